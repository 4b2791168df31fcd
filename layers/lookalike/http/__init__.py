"""The HTTP edge: one assembler (`app`) of small route modules, shared by the Lambda functions and
the local server (`server`)."""
