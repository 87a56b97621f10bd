"""HTTP surface: routes, handlers, middleware, parameter parsing, auth, OpenAPI, server."""
