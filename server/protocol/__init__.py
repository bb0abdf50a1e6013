"""The Open Inference Protocol subset: wire schemas and the request/response codec."""
