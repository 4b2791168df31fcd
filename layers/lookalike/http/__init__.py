"""The HTTP edge: powertools routes (`routes`) shared by the search Lambda and the local server (`server`)."""
