"""First-response SLA: business-time calendar and due-time policy."""
