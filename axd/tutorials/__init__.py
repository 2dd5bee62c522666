"""The daemon's side of the tutorials: the local onboarding funnel (`axctl tutorial stats`)."""
