"""The Litestar glue: plugins that assemble the app, request dependencies, templating, headers.
The domain logic lives in services/ and knows nothing of HTTP requests."""
