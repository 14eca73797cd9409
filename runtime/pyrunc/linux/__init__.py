"""Container-side kernel work, one concern per module. Imports only pyrunc.syscalls and pyrunc.spec.plan types."""
