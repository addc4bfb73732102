"""SPDY/3.1: frame codec (:mod:`.frames`) and asyncio session (:mod:`.connection`)."""
