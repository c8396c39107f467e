"""The methods OUCR is compared with: UNet, KIKI-Net, Kiu-net, D5C5, PC-RNN and CS.

Every network implements :class:`oucr.models.base.ReconModel` and ends with the
shared data-consistency layer of :mod:`oucr.physics`.
"""
