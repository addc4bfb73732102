"""gRPC servicers: thin adapters from CRI messages to the business layer."""
