"""The webhook's certificates: the plan (pure), the settings, the keeper that writes them."""
