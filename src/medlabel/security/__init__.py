"""Security: users, roles, sessions, audit log and de-identification of imported images."""
