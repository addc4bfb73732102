"""NRI, the Node Resource Interface: the runtime side that hosts node plugins."""
