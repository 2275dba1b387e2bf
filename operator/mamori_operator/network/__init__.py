"""NetworkPolicies: what each namespace should have, from the policies that select it."""
