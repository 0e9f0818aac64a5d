"""Egen provhantering (EP): the OfferInteraction client, its contract and its stub. May import: producer."""
