"""What the testbed measures, apart from what the owner runs: the paper's tables (evaluation,
stability), the population's error rates (roc, validation), LIME (explain), the demo, the
load test and the HTML report. Product modules (``verifier_client.*``) never import from here.
"""
