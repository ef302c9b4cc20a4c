"""CEO briefings: generated executive summaries of a shop's period, staff review, API and admin."""
