"""The service's HTTP routers, one per resource: files, fine-tuning jobs, admin (keys), plus the shared
inference routes (orgtune.serve.routes) answering from the caller's project catalog."""
