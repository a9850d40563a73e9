"""NL-RAN: residual 3D attention non-local network for COVID-19 CT classification (arXiv 2408.04300).

Modules: ``model`` (``NLRAN``, ``NonLocalBlock3d``, ``AttentionModule3d``, ``SoftMaskBranch3d``,
``ResidualUnit3d``), ``baselines`` (3D ResNet, CBAM-3D, COVNet), ``data`` (phantom and CC-CCII),
``heatmaps`` (attention / CAM / Grad-CAM and localisation scores), ``engine`` (model factory, metrics,
latency), ``figures``, ``config``.
"""
