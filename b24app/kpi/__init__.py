"""KPIs computed from the app's own lead and clock records."""
