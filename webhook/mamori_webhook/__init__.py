"""mamori's validating admission webhook (``mamori webhook``), importable as ``mamori_webhook``.

review.py decodes and answers AdmissionReviews, admission.py decides what gets judged, app.py is
the Flask app, policy_source.py and watch.py keep the policies current, tls.py reloads the
certificate, server.py runs gunicorn, command.py is the command line. Importing this package
imports nothing heavy: ``mamori check`` loads command.py to list the flags.
"""
