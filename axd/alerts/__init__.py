"""Alert rules, their engine and where alerts are sent."""
