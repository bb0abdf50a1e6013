"""What the testbed measures, apart from what the owner runs: the paper's tables (evaluation,
stability), the population's error rates (roc, validation), LIME (explain), the demo, the HTML
report, and the local server these studies start. Product modules (``verifier_client.*``)
never import from here."""
