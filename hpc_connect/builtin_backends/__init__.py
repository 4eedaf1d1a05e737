"""Built-in backends: one module each, holding only what differs between schedulers."""
