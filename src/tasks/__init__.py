"""Tasks and the machinery that runs them: broker, transport, results."""
