"""Request and response schemas of the public API, one module per resource.

Where the public shape equals the inter-service contract the contract model is
reused, so the two can never drift apart.
"""
