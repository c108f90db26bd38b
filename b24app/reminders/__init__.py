"""Appointment reminders: schedule, channels, consent, replies, A/B tests."""
