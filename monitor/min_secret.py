"""The shortest secret llm-monitor replaces in a text: one rule for everything it redacts.

A target's key and credential headers in what its provider returns (providers.scrub), an alert sink's secrets in
its delivery errors and the HTTP library's logs (alerts.sinks.base), and all of them in rows already stored
(`store scrub`). A shorter value (a placeholder key `x`, a six-letter signing secret) is no real secret, and
replacing it would mangle every text that happens to hold those letters; real keys, tokens and webhook URLs are
far longer. One constant, so that `store scrub` takes out exactly what the running daemon keeps out.
"""

MIN_SECRET = 8
