"""``kubectl mamori why``: which ClusterSecurityPolicies judge an object in the cluster, and why.

Read from the cluster (:mod:`.cluster`: GETs only), explained by the same engine as the webhook
(:mod:`.explain`, pure), written for people or programs (:mod:`.render`); :mod:`.command` ties
them to the command line, both as ``kubectl mamori why`` and ``mamori why``.
"""
