"""dynrnn.datasets"""

from ._flowing_digits import FlowingDigits as FlowingDigits, flowing_digits as flowing_digits
