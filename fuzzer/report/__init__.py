"""`parallax report`: read a campaign store (never writing it) and render it as text, JSON, HTML, JUnit or
Markdown, plus the nightly "what is new, what vanished" comparison (`since.compare_runs`)."""
