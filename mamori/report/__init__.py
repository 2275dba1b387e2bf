"""Reports of ``mamori check`` for CI systems: SARIF for code-scanning pages, JUnit XML for test
reports, and the line of each finding's field that both need.

Nothing here is imported unless one of those outputs is chosen, so the text and JSON reports
start as fast as before.
"""
