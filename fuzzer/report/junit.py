"""JUnit XML for CI: one test suite per blamed component, one failing test case per distinct bug."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from fuzzer.report import fmt
from fuzzer.report.load import Bug, ReportData

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def xml_safe(text: str) -> str:
    """Error messages carry terminal escapes and NULs now and then: XML 1.0 forbids them."""
    return _NOT_XML.sub("?", text)


def _case_name(b: Bug) -> str:
    what = f" in {b.first_op}" if b.first_op else ""
    return xml_safe(f"{b.symptom} at {b.location}{what} [{b.sig12}]")


def render_junit(data: ReportData) -> bytes:
    """Each distinct bug is a failure whose text carries its count, first sighting, pipelines and example."""
    by_component: dict[str, list[Bug]] = {}
    for b in data.bugs:
        by_component.setdefault(b.component or "unknown", []).append(b)
    root = ET.Element("testsuites", name="parallax", tests=str(len(data.bugs)), failures=str(len(data.bugs)))
    for component in sorted(by_component):
        bugs = by_component[component]
        suite = ET.SubElement(root, "testsuite", name=xml_safe(component), tests=str(len(bugs)),
                              failures=str(len(bugs)), errors="0", skipped="0")
        for b in bugs:
            case = ET.SubElement(suite, "testcase", classname=xml_safe(f"parallax.{component}"), name=_case_name(b))
            failure = ET.SubElement(case, "failure", type=b.symptom, message=xml_safe(f"{b.headline} (x{b.count})"))
            failure.text = xml_safe("\n".join([
                f"count: {b.count}", f"signature: {b.signature}", f"stage: {b.stage}", f"location: {b.location}",
                f"first seen: {fmt.when(b.first_seen)} (run {b.first_run})", f"pipelines: {', '.join(b.pipelines)}",
                f"smallest example: {fmt.smallest(data, b)}", "", b.message]))
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"
