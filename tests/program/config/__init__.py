"""The stack config: components/config/ (models, rules, errors, the generated reference)."""
