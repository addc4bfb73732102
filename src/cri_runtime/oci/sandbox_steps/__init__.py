"""The steps ``build_sandbox_spec`` applies, one module per family.

Each step is ``step(inp: SandboxSpecInput, spec) -> None``; their order is
``sandbox_spec.SANDBOX_STEPS``.
"""
