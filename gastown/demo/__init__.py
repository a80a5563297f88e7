"""`gt demo`: a complete town in a temp dir, on the built-in demo agent, no API keys.

``project`` holds the sample project and its issues (pure data); ``run`` builds the
town, slings the work, watches it land and sums it up.
"""
