"""Validity studies: do the metrics move the right way, and monotonically, under controlled corruption?"""
