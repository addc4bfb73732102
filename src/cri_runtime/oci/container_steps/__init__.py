"""The steps ``build_container_spec`` applies, one module per family.

Each step is ``step(inp: ContainerSpecInput, spec) -> None``; their order is
``container_spec.CONTAINER_STEPS``.
"""
