"""The engine as a process the app talks to: the JSON-lines protocol (its message shapes and
their framing), the server and its job machinery, the handler groups, and the client.

Importing this package is cheap: the app imports its protocol and client only."""
