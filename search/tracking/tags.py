"""The tags by which the service finds its runs again."""

ROLE = "search.role"  # study | trial | fold | selection


STUDY = "search.study"
