"""`parallax check MODEL`: one real model through every applicable pipeline, and, where a conversion
diverges, the layer at fault, the fault class (input, parameters, hyper-parameters, graph) and a repair.

Parent side (no heavy imports): `catalog` (built-ins), `spec` (what MODEL names, validated), `inputs`,
`runner` (jobs in isolated workers), `metrics`, `render`. Worker side: `job` (the handler), `sources`
(loading and running the source model), `zoo` (built-in architectures), `localise`, `transplant`.
"""
