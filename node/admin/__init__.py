"""Admin: platform admin users and roles, audit log, platform settings, legal documents."""
