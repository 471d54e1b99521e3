"""Python side of the router image: identity verifier and nginx config renderer."""
