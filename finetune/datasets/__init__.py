"""Downstream data sets in their real on-disk formats: readers, layout checks and generators of small stand-ins.

One module per format family: ``coco`` (COCO detection JSON), ``ade20k`` (ADEChallengeData2016), ``cls`` (CIFAR-100,
Flowers-102, Oxford-IIIT Pets, STL-10, Food-101 and image folders).
"""
