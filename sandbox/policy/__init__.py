"""The ACI rule set as data (aci_rules.yaml); rendered and evaluated by sandbox.core.policy."""
