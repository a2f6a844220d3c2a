"""Bringing the graph up: what launch files and `ssl-robot up` share (no torch, no onnx).

Modules: `graph` (the nodes, parameters and remappings of each graph, as plain data),
`launch_actions` (the graph as `launch_ros` actions, for the launch files), `lifecycle`
(a client of the lifecycle services), `runner` (the process runner behind `ssl-robot up`).
"""
