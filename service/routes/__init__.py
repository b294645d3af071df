"""HTTP routes, one module per area; they parse, validate and shape responses, and delegate."""
