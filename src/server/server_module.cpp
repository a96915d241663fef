// Module server.
