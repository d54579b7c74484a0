"""Chaotic flows: Lorenz-63, Rössler, Lorenz-96 and further systems of the dysts catalogue.

Parameters, initial conditions and reference Lyapunov spectra of the dysts systems are the
values of the dysts catalogue (Gilpin, "Chaos as an interpretable benchmark for forecasting and
data-driven modelling", NeurIPS Datasets and Benchmarks 2021; `dysts/data/chaotic_attractors.json`,
Apache-2.0), written here as numbers. The dysts spectra are numerical estimates (rounded to four
decimals here); for Lorenz-63 dysts stores (1.0911, 0.0299, -14.9156) where the accurate value is
(0.9056, 0, -14.5723), so treat them as indicative. The vector fields are written from the
published equations.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._errors import DynrnnTypeError, DynrnnValueError
from ._base import AbstractSystem


_DYSTS = "dysts catalogue (Gilpin 2021), numerical estimate"


def _stack(*components) -> Float[Array, " dim"]:
    return jnp.stack(components)


class Lorenz63(AbstractSystem):
    r"""The Lorenz (1963) convection model.

    $$\dot x = \sigma (y - x),\quad \dot y = x(\rho - z) - y,\quad \dot z = xy - \beta z.$$

    Defaults σ = 10, ρ = 28, β = 8/3 (dysts rounds β to 2.667). Divergence −(σ + 1 + β).

    Lorenz, "Deterministic nonperiodic flow", J. Atmos. Sci. 20 (1963).
    """

    sigma: float | Array = 10.0
    rho: float | Array = 28.0
    beta: float | Array = 8.0 / 3.0

    # dysts initial condition (on the attractor).
    default_y0: ClassVar = (-9.7869288, -15.03852, 20.533978)
    reference_lyapunov: ClassVar = (0.9056, 0.0, -14.5723)
    reference_source: ClassVar = "Sprott, Chaos and Time-Series Analysis (2003), Lorenz attractor"
    citation: ClassVar = "Lorenz, E. N. (1963). Deterministic nonperiodic flow. J. Atmos. Sci. 20."

    def vector_field(self, t, y, args):
        x, yy, z = y[0], y[1], y[2]
        return _stack(
            self.sigma * (yy - x),
            x * (self.rho - z) - yy,
            x * yy - self.beta * z,
        )


class Rossler(AbstractSystem):
    r"""The Rössler (1976) attractor.

    $$\dot x = -y - z,\quad \dot y = x + a y,\quad \dot z = b + z (x - c).$$

    Rössler, "An equation for continuous chaos", Phys. Lett. A 57 (1976).
    """

    a: float | Array = 0.2
    b: float | Array = 0.2
    c: float | Array = 5.7

    default_y0: ClassVar = (6.5134412, 0.4772013, 0.34164294)
    reference_lyapunov: ClassVar = (0.0763, 0.0075, -5.741)
    reference_source: ClassVar = _DYSTS
    citation: ClassVar = "Rossler, O. E. (1976). An equation for continuous chaos. PLA 57."

    def vector_field(self, t, y, args):
        x, yy, z = y[0], y[1], y[2]
        return _stack(-yy - z, x + self.a * yy, self.b + z * (x - self.c))


class Lorenz96(AbstractSystem):
    r"""The Lorenz (1996) model of `n` sites on a ring with constant forcing `F`.

    $$\dot x_i = (x_{i+1} - x_{i-2})\, x_{i-1} - x_i + F,\qquad i = 0..n-1 \ (\text{mod } n).$$

    `n >= 4`. The default initial condition is the uniform fixed point `x_i = F` with `x_0`
    raised by 0.01, a perturbation that the chaotic regime (F = 8) amplifies. The DSR
    literature uses n = 10, F = 8 (Brenner et al. 2022); dysts' `Lorenz96` is n = 4, F = 20, for
    which its reference spectrum is returned.

    Lorenz, "Predictability: a problem partly solved", ECMWF Seminar on Predictability (1996).
    """

    n: int = eqx.field(static=True, default=10)
    forcing: float | Array = 8.0

    reference_source: ClassVar = _DYSTS + " (n = 4, F = 20 only)"
    citation: ClassVar = (
        "Lorenz, E. N. (1996). Predictability: a problem partly solved. ECMWF Seminar."
    )

    def __check_init__(self):
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 4:
            raise DynrnnValueError(f"`n` must be an integer >= 4, got {self.n!r}.")

    @property
    def default_y0(self) -> tuple[float, ...]:
        f = float(self.forcing)
        return (f + 0.01,) + (f,) * (self.n - 1)

    def lyapunov_spectrum(self):
        if self.n == 4 and float(self.forcing) == 20.0:
            return (1.6247, 0.1719, -1.1936, -3.5505)
        return None

    def vector_field(self, t, y, args):
        return (jnp.roll(y, -1) - jnp.roll(y, 2)) * jnp.roll(y, 1) - y + self.forcing


class Chen(AbstractSystem):
    r"""Chen's system: $\dot x = a(y - x)$, $\dot y = (c - a)x - xz + cy$, $\dot z = xy - bz$.

    Chen & Ueta, "Yet another chaotic attractor", Int. J. Bifurc. Chaos 9 (1999).
    """

    a: float | Array = 35.0
    b: float | Array = 3.0
    c: float | Array = 28.0

    default_y0: ClassVar = (3.2689697, 5.2990458, 19.435349)
    reference_lyapunov: ClassVar = (2.0471, -0.0503, -11.8418)
    reference_source: ClassVar = _DYSTS
    citation: ClassVar = "Chen, G., Ueta, T. (1999). Yet another chaotic attractor. IJBC 9."

    def vector_field(self, t, y, args):
        x, yy, z = y[0], y[1], y[2]
        return _stack(
            self.a * (yy - x),
            (self.c - self.a) * x - x * z + self.c * yy,
            x * yy - self.b * z,
        )


class Chua(AbstractSystem):
    r"""Chua's circuit with a piecewise-linear diode.

    $$\dot x = \alpha (y - x - g(x)),\quad \dot y = x - y + z,\quad \dot z = -\beta y,$$
    $$g(x) = m_1 x + \tfrac12 (m_0 - m_1)(|x + 1| - |x - 1|).$$

    Chua, Komuro, Matsumoto, "The double scroll family", IEEE Trans. Circuits Syst. 33 (1986).
    """

    alpha: float | Array = 15.6
    beta: float | Array = 28.0
    m0: float | Array = -1.142857
    m1: float | Array = -0.71429

    default_y0: ClassVar = (1.1262351, -0.11386474, -0.78324421)
    reference_lyapunov: ClassVar = (0.4605, 0.0022, -4.3191)
    reference_source: ClassVar = _DYSTS
    citation: ClassVar = "Chua, L. O., Komuro, M., Matsumoto, T. (1986). The double scroll family."

    def vector_field(self, t, y, args):
        x, yy, z = y[0], y[1], y[2]
        g = self.m1 * x + 0.5 * (self.m0 - self.m1) * (jnp.abs(x + 1) - jnp.abs(x - 1))
        return _stack(self.alpha * (yy - x - g), x - yy + z, -self.beta * yy)


class Thomas(AbstractSystem):
    r"""Thomas' cyclically symmetric attractor: $\dot x = -a x + b \sin y$ (and cyclically).

    Thomas, "Deterministic chaos seen in terms of feedback circuits", IJBC 9 (1999).
    """

    a: float | Array = 1.85
    b: float | Array = 10.0

    default_y0: ClassVar = (2.199442, 2.3634225, 3.220197)
    reference_lyapunov: ClassVar = (0.759, 0.0574, -6.422)
    reference_source: ClassVar = _DYSTS
    citation: ClassVar = "Thomas, R. (1999). Deterministic chaos seen in terms of feedback circuits"

    def vector_field(self, t, y, args):
        return -self.a * y + self.b * jnp.sin(jnp.roll(y, -1))


class HindmarshRose(AbstractSystem):
    r"""The Hindmarsh-Rose neuron in the scaled form of Marhl & Perc: a fast membrane
    potential `x` (time constant `tx`), a recovery variable `y` and an adaptation current `z`
    (time constant `tz`); it spikes and bursts.

    $$t_x \dot x = -t_x x + y - a x^3 + b x^2 + z,\quad \dot y = -a x^3 - (d - b) x^2 + z,
    \quad t_z \dot z = -s x - z + c.$$

    Marhl & Perc, "Determining the flexibility of regular and chaotic attractors", Chaos,
    Solitons & Fractals 28 (2006); Hindmarsh & Rose, Proc. R. Soc. Lond. B 221 (1984).
    """

    a: float | Array = 0.49
    b: float | Array = 1.0
    c: float | Array = 0.0322
    d: float | Array = 1.0
    s: float | Array = 1.0
    tx: float | Array = 0.03
    tz: float | Array = 0.8

    default_y0: ClassVar = (0.031111835, -0.021557059, 0.041475046)
    reference_lyapunov: ClassVar = (0.2621, 0.0018, -6.5107)
    reference_source: ClassVar = _DYSTS
    citation: ClassVar = ("Marhl, M., Perc, M. (2006). Chaos, Solitons & Fractals 28; "
                          "Hindmarsh, J. L., Rose, R. M. (1984). Proc. R. Soc. Lond. B 221.")

    def vector_field(self, t, y, args):
        x, yy, z = y[0], y[1], y[2]
        cubic, square = self.a * x**3, x**2
        return _stack((-self.tx * x + yy - cubic + self.b * square + z) / self.tx,
                      -cubic - (self.d - self.b) * square + z,
                      (-self.s * x - z + self.c) / self.tz)


class Aizawa(AbstractSystem):
    r"""The Aizawa (Langford) attractor.

    $$\dot x = (z - b)x - d y,\quad \dot y = d x + (z - b) y,$$
    $$\dot z = c + a z - z^3/3 - (x^2 + y^2)(1 + e z) + f z x^3.$$

    Aizawa & Uezu, Prog. Theor. Phys. 67 (1982); Langford (1984).
    """

    a: float | Array = 0.95
    b: float | Array = 0.7
    c: float | Array = 0.6
    d: float | Array = 3.5
    e: float | Array = 0.25
    f: float | Array = 0.1

    default_y0: ClassVar = (-0.78450179, -0.62887672, -0.17620268)
    reference_lyapunov: ClassVar = (0.0895, 0.0203, -0.3091)
    reference_source: ClassVar = _DYSTS
    citation: ClassVar = "Aizawa, Y., Uezu, T. (1982). Prog. Theor. Phys. 67; Langford (1984)."

    def vector_field(self, t, y, args):
        x, yy, z = y[0], y[1], y[2]
        r2 = x**2 + yy**2
        return _stack(
            (z - self.b) * x - self.d * yy,
            self.d * x + (z - self.b) * yy,
            self.c + self.a * z - z**3 / 3 - r2 * (1 + self.e * z) + self.f * z * x**3,
        )


class Halvorsen(AbstractSystem):
    r"""Halvorsen's cyclically symmetric attractor: $\dot x = -a x - b(y + z) - y^2$ (cyclic).

    Sprott, *Elegant Chaos* (2010).
    """

    a: float | Array = 1.4
    b: float | Array = 4.0

    default_y0: ClassVar = (-8.6807408, -2.4741399, 0.070775762)
    reference_lyapunov: ClassVar = (0.5862, -0.032, -4.6876)
    reference_source: ClassVar = _DYSTS
    citation: ClassVar = "Sprott, J. C. (2010). Elegant Chaos. World Scientific."

    def vector_field(self, t, y, args):
        y1, y2 = jnp.roll(y, -1), jnp.roll(y, -2)
        return -self.a * y - self.b * (y1 + y2) - y1**2


class SprottB(AbstractSystem):
    r"""Sprott's case B: $\dot x = yz$, $\dot y = x - y$, $\dot z = 1 - xy$.

    Sprott, "Some simple chaotic flows", Phys. Rev. E 50 (1994).
    """

    default_y0: ClassVar = (1.6878282, 1.4848132, -0.53706628)
    reference_lyapunov: ClassVar = (0.2199, 0.0052, -1.2146)
    reference_source: ClassVar = _DYSTS
    citation: ClassVar = "Sprott, J. C. (1994). Some simple chaotic flows. Phys. Rev. E 50."

    def vector_field(self, t, y, args):
        x, yy, z = y[0], y[1], y[2]
        return _stack(yy * z, x - yy, 1 - x * yy)


class SprottC(AbstractSystem):
    r"""Sprott's case C: $\dot x = yz$, $\dot y = x - y$, $\dot z = 1 - x^2$.

    Sprott, "Some simple chaotic flows", Phys. Rev. E 50 (1994).
    """

    default_y0: ClassVar = (-0.47199823, -0.27198066, 1.9418244)
    reference_lyapunov: ClassVar = (0.179, -0.0007, -1.1645)
    reference_source: ClassVar = _DYSTS
    citation: ClassVar = "Sprott, J. C. (1994). Some simple chaotic flows. Phys. Rev. E 50."

    def vector_field(self, t, y, args):
        x, yy, z = y[0], y[1], y[2]
        return _stack(yy * z, x - yy, 1 - x**2)


class SprottD(AbstractSystem):
    r"""Sprott's case D: $\dot x = -y$, $\dot y = x + z$, $\dot z = xz + 3y^2$.

    Sprott, "Some simple chaotic flows", Phys. Rev. E 50 (1994).
    """

    default_y0: ClassVar = (-1.3396906, -0.21238338, 0.32982163)
    reference_lyapunov: ClassVar = (0.1142, 0.0018, -1.4602)
    reference_source: ClassVar = _DYSTS
    citation: ClassVar = "Sprott, J. C. (1994). Some simple chaotic flows. Phys. Rev. E 50."

    def vector_field(self, t, y, args):
        x, yy, z = y[0], y[1], y[2]
        return _stack(-yy, x + z, x * z + 3 * yy**2)


class SprottE(AbstractSystem):
    r"""Sprott's case E: $\dot x = yz$, $\dot y = x^2 - y$, $\dot z = 1 - 4x$.

    Sprott, "Some simple chaotic flows", Phys. Rev. E 50 (1994).
    """

    default_y0: ClassVar = (0.6173759, 0.66599285, -1.6575023)
    reference_lyapunov: ClassVar = (0.0983, -0.0003, -1.0954)
    reference_source: ClassVar = _DYSTS
    citation: ClassVar = "Sprott, J. C. (1994). Some simple chaotic flows. Phys. Rev. E 50."

    def vector_field(self, t, y, args):
        x, yy, z = y[0], y[1], y[2]
        return _stack(yy * z, x**2 - yy, 1 - 4 * x)


class Dadras(AbstractSystem):
    r"""The Dadras–Momeni system.

    $$\dot x = y - p x + o y z,\quad \dot y = r y - x z + z,\quad \dot z = c x y - e z.$$

    Dadras & Momeni, Phys. Lett. A 373 (2009).
    """

    c: float | Array = 2.0
    e: float | Array = 9.0
    o: float | Array = 2.7
    p: float | Array = 3.0
    r: float | Array = 1.7

    default_y0: ClassVar = (1.0284085, -3.5348655, -0.72081646)
    reference_lyapunov: ClassVar = (0.4734, 0.0065, -11.1577)
    reference_source: ClassVar = _DYSTS
    citation: ClassVar = "Dadras, S., Momeni, H. R. (2009). Phys. Lett. A 373."

    def vector_field(self, t, y, args):
        x, yy, z = y[0], y[1], y[2]
        return _stack(
            yy - self.p * x + self.o * yy * z,
            self.r * yy - x * z + z,
            self.c * x * yy - self.e * z,
        )


class Rucklidge(AbstractSystem):
    r"""Rucklidge's model of double convection: $\dot x = -a x + b y - yz$, $\dot y = x$,
    $\dot z = -z + y^2$.

    Rucklidge, "Chaos in models of double convection", J. Fluid Mech. 237 (1992).
    """

    a: float | Array = 2.0
    b: float | Array = 6.7

    default_y0: ClassVar = (1.9257158, 3.1923835, 5.7829655)
    reference_lyapunov: ClassVar = (0.1829, -0.0039, -3.2151)
    reference_source: ClassVar = _DYSTS
    citation: ClassVar = "Rucklidge, A. M. (1992). Chaos in models of double convection. JFM 237."

    def vector_field(self, t, y, args):
        x, yy, z = y[0], y[1], y[2]
        return _stack(-self.a * x + self.b * yy - yy * z, x, -z + yy**2)


class Arneodo(AbstractSystem):
    r"""The Arneodo–Coullet–Tresser jerk system: $\dot x = y$, $\dot y = z$,
    $\dot z = -a x - b y - c z + d x^3$.

    Arneodo, Coullet, Tresser, Phys. Lett. A 79 (1980).
    """

    a: float | Array = -5.5
    b: float | Array = 4.5
    c: float | Array = 1.0
    d: float | Array = -1.0

    default_y0: ClassVar = (-2.7515698, 0.19079818, 3.4703629)
    reference_lyapunov: ClassVar = (0.2429, -0.0006, -1.217)
    reference_source: ClassVar = _DYSTS
    citation: ClassVar = "Arneodo, A., Coullet, P., Tresser, C. (1980). Phys. Lett. A 79."

    def vector_field(self, t, y, args):
        x, yy, z = y[0], y[1], y[2]
        return _stack(yy, z, -self.a * x - self.b * yy - self.c * z + self.d * x**3)


class GenesioTesi(AbstractSystem):
    r"""The Genesio–Tesi jerk system: $\dot x = y$, $\dot y = z$,
    $\dot z = -c x - b y - a z + x^2$.

    Genesio & Tesi, Automatica 28 (1992).
    """

    a: float | Array = 0.44
    b: float | Array = 1.1
    c: float | Array = 1.0

    default_y0: ClassVar = (-0.053772565, -0.26162564, 0.33501557)
    reference_lyapunov: ClassVar = (0.0997, 0.0004, -0.5282)
    reference_source: ClassVar = _DYSTS
    citation: ClassVar = "Genesio, R., Tesi, A. (1992). Automatica 28."

    def vector_field(self, t, y, args):
        x, yy, z = y[0], y[1], y[2]
        return _stack(yy, z, -self.c * x - self.b * yy - self.a * z + x**2)


class Lorenz84(AbstractSystem):
    r"""Lorenz's (1984) low-order atmospheric circulation model.

    $$\dot x = -a x - y^2 - z^2 + a f,\quad \dot y = -y + xy - b x z + g,\quad
    \dot z = -z + b x y + x z.$$

    Lorenz, "Irregularity: a fundamental property of the atmosphere", Tellus A 36 (1984).
    """

    a: float | Array = 1.32
    b: float | Array = 7.91
    f: float | Array = 4.83
    g: float | Array = 4.194

    default_y0: ClassVar = (1.926479236120359, -0.13402110197257552, -1.72146730664761)
    reference_lyapunov: ClassVar = (1.0475, -0.0454, -2.252)
    reference_source: ClassVar = _DYSTS
    citation: ClassVar = "Lorenz, E. N. (1984). Irregularity. Tellus A 36."

    def vector_field(self, t, y, args):
        x, yy, z = y[0], y[1], y[2]
        return _stack(
            -self.a * x - yy**2 - z**2 + self.a * self.f,
            -yy + x * yy - self.b * x * z + self.g,
            -z + self.b * x * yy + x * z,
        )


class NoseHoover(AbstractSystem):
    r"""The Nosé–Hoover thermostatted oscillator: $\dot x = y$, $\dot y = -x + yz$,
    $\dot z = a - y^2$ (Sprott's case A for a = 1).

    Nosé, J. Chem. Phys. 81 (1984); Hoover, Phys. Rev. A 31 (1985).
    """

    a: float | Array = 1.5

    default_y0: ClassVar = (-1.9758582, 0.24647527, 0.79024299)
    reference_lyapunov: ClassVar = (0.0476, 0.0014, -0.0117)
    reference_source: ClassVar = _DYSTS
    citation: ClassVar = "Nose, S. (1984). J. Chem. Phys. 81; Hoover, W. G. (1985). PRA 31."

    def vector_field(self, t, y, args):
        x, yy, z = y[0], y[1], y[2]
        return _stack(yy, -x + yy * z, self.a - yy**2)


class ShimizuMorioka(AbstractSystem):
    r"""The Shimizu–Morioka system: $\dot x = y$, $\dot y = x - a y - xz$, $\dot z = -b z + x^2$.

    Shimizu & Morioka, Phys. Lett. A 76 (1980).
    """

    a: float | Array = 0.85
    b: float | Array = 0.5

    default_y0: ClassVar = (0.016838697, 0.03489384, 0.35346848)
    reference_lyapunov: ClassVar = (0.044, 0.0, -1.41)
    reference_source: ClassVar = _DYSTS
    citation: ClassVar = "Shimizu, T., Morioka, N. (1980). Phys. Lett. A 76."

    def vector_field(self, t, y, args):
        x, yy, z = y[0], y[1], y[2]
        return _stack(yy, x - self.a * yy - x * z, -self.b * z + x**2)


class RabinovichFabrikant(AbstractSystem):
    r"""The Rabinovich–Fabrikant equations.

    $$\dot x = y(z - 1 + x^2) + g x,\quad \dot y = x(3z + 1 - x^2) + g y,\quad
    \dot z = -2 z (a + x y).$$

    Rabinovich & Fabrikant, Sov. Phys. JETP 50 (1979).
    """

    a: float | Array = 1.1
    g: float | Array = 0.87

    default_y0: ClassVar = (-1.8207276, 0.83440917, 0.2078248)
    reference_lyapunov: ClassVar = (0.2423, 0.0, -0.6718)
    reference_source: ClassVar = _DYSTS
    citation: ClassVar = "Rabinovich, M. I., Fabrikant, A. L. (1979). Sov. Phys. JETP 50."

    def vector_field(self, t, y, args):
        x, yy, z = y[0], y[1], y[2]
        return _stack(
            yy * (z - 1 + x**2) + self.g * x,
            x * (3 * z + 1 - x**2) + self.g * yy,
            -2 * z * (self.a + x * yy),
        )


class ChenLee(AbstractSystem):
    r"""The Chen–Lee rigid-body system: $\dot x = a x - yz$, $\dot y = b y + xz$,
    $\dot z = c z + xy/3$.

    Chen & Lee, Chaos Solitons Fractals 21 (2004).
    """

    a: float | Array = 5.0
    b: float | Array = -10.0
    c: float | Array = -0.38

    default_y0: ClassVar = (0.17177112, 0.10360479, 6.2553878)
    reference_lyapunov: ClassVar = (0.1646, 0.0002, -5.4853)
    reference_source: ClassVar = _DYSTS
    citation: ClassVar = "Chen, H. K., Lee, C. I. (2004). Chaos Solitons Fractals 21."

    def vector_field(self, t, y, args):
        x, yy, z = y[0], y[1], y[2]
        return _stack(self.a * x - yy * z, self.b * yy + x * z, self.c * z + x * yy / 3)


class NewtonLeipnik(AbstractSystem):
    r"""The Newton–Leipnik rigid-body system with linear feedback.

    $$\dot x = -a x + y + 10 yz,\quad \dot y = -x - 0.4 y + 5 xz,\quad \dot z = b z - 5 xy.$$

    Leipnik & Newton, Phys. Lett. A 86 (1981). (dysts spells it `NewtonLiepnik`.)
    """

    a: float | Array = 0.4
    b: float | Array = 0.175

    default_y0: ClassVar = (0.29430753, 0.10649486, 0.29081125)
    reference_lyapunov: ClassVar = (0.1724, -0.0004, -0.7796)
    reference_source: ClassVar = _DYSTS
    citation: ClassVar = "Leipnik, R. B., Newton, T. A. (1981). Phys. Lett. A 86."

    def vector_field(self, t, y, args):
        x, yy, z = y[0], y[1], y[2]
        return _stack(
            -self.a * x + yy + 10 * yy * z,
            -x - 0.4 * yy + 5 * x * z,
            self.b * z - 5 * x * yy,
        )


class BurkeShaw(AbstractSystem):
    r"""The Burke–Shaw system: $\dot x = -n(x + y)$, $\dot y = y - n x z$, $\dot z = n x y + e$.

    Shaw, Z. Naturforsch. 36a (1981).
    """

    e: float | Array = 13.0
    n: float | Array = 10.0

    default_y0: ClassVar = (-0.79153188, 0.65244479, 0.22517831)
    reference_lyapunov: ClassVar = (2.3454, 0.0271, -11.2253)
    reference_source: ClassVar = _DYSTS
    citation: ClassVar = "Shaw, R. (1981). Z. Naturforsch. 36a."

    def vector_field(self, t, y, args):
        x, yy, z = y[0], y[1], y[2]
        return _stack(-self.n * (x + yy), yy - self.n * x * z, self.n * x * yy + self.e)


# Every system, in the order `names()` lists them.
SYSTEMS: tuple[type[AbstractSystem], ...] = (
    Lorenz63,
    Rossler,
    Lorenz96,
    Aizawa,
    Arneodo,
    BurkeShaw,
    Chen,
    ChenLee,
    Chua,
    Dadras,
    GenesioTesi,
    Halvorsen,
    HindmarshRose,
    Lorenz84,
    NewtonLeipnik,
    NoseHoover,
    RabinovichFabrikant,
    Rucklidge,
    ShimizuMorioka,
    SprottB,
    SprottC,
    SprottD,
    SprottE,
    Thomas,
)


# Other spellings users bring from dysts and the literature.
_ALIASES = {"lorenz": Lorenz63, "lorenz63": Lorenz63, "newtonliepnik": NewtonLeipnik}


def names() -> list[str]:
    """The names of all systems, as accepted by `get`."""
    return [cls.__name__ for cls in SYSTEMS]


def _normalise(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum()).replace("ö", "o")


def get(name: str, **params) -> AbstractSystem:
    """The system called `name` (case-insensitive; `-`/`_` ignored), built with `params`.

    **Arguments:**
    - `name`: e.g. `"lorenz63"`, `"Rossler"`, `"lorenz96"`; see `names()`.
    - `**params`: parameters of the system, e.g. `get("lorenz96", n=40, forcing=8.0)`.

    **Returns:** the system instance.

    **Raises:** `DynrnnValueError` for an unknown name (listing the valid ones) or an unknown
    parameter; `DynrnnTypeError` if `name` is not a string.
    """
    if not isinstance(name, str):
        raise DynrnnTypeError(f"`name` must be a string, got {type(name).__name__}.")
    key = _normalise(name)
    table = {_normalise(cls.__name__): cls for cls in SYSTEMS}
    table.update(_ALIASES)
    cls = table.get(key)
    if cls is None:
        raise DynrnnValueError(
            f"unknown system `name` {name!r}; valid names: {', '.join(names())}."
        )
    try:
        return cls(**params)
    except TypeError as e:
        raise DynrnnValueError(
            f"invalid parameters {sorted(params)} for system {cls.__name__}: {e}"
        ) from e
