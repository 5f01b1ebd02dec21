#!/usr/bin/env python3
"""Independent reference for BatchSampler.Shuffle and SplitMix64 (src/Ddpm/Data/BatchSampler.cs).

Written from the algorithm's description only, with Python's arbitrary-precision integers reduced
modulo 2**64 by hand, so it shares no code (and no overflow behaviour) with the C# implementation:

- SplitMix64 (Steele, Lea, Flood 2014; Vigna's splitmix64.c): state += 0x9E3779B97F4A7C15, then
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9; z = (z ^ (z >> 27)) * 0x94D049BB133111EB; z ^ (z >> 31).
- The shuffle's generator starts at mix(seed + 0x9E3779B97F4A7C15) ^ mix(epoch * 0xD1B54A32D192ED03
  + 0x632BE59BD9B4E019), the seed taken as an unsigned 64-bit value (two's complement).
- Draws below a bound b are unbiased: raw outputs r < (2**64 - b) mod b are rejected, then r mod b.
- Fisher-Yates from the top: for i = n-1 down to 1, j = draw below i+1, swap perm[i] and perm[j].

Run: python3 shuffle_reference.py   (prints what tests/Ddpm.Tests/Data/BatchSamplerTests.cs,
SplitMix64Tests.cs and the real-vs-real floor tests in tests/Ddpm.Tests/Metrics and Cli assert;
shuffle_reference.txt beside this file holds its output).
"""

M = 2**64
GOLDEN = 0x9E3779B97F4A7C15


def mix(z):
    z %= M
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % M
    return z ^ (z >> 31)


class SplitMix64:
    def __init__(self, state):
        self.state = state % M

    def next(self):
        self.state = (self.state + GOLDEN) % M
        return mix(self.state)

    def below(self, bound):
        threshold = (M - bound) % bound
        while True:
            r = self.next()
            if r >= threshold:
                return r % bound


def shuffle(n, seed, epoch):
    rng = SplitMix64(mix(seed % M + GOLDEN) ^ mix((epoch % M) * 0xD1B54A32D192ED03 + 0x632BE59BD9B4E019))
    perm = list(range(n))
    for i in range(n - 1, 0, -1):
        j = rng.below(i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def main():
    for seed in (0, 1234567):
        rng = SplitMix64(seed)
        print(f"splitmix64 seed {seed}: " + ", ".join(f"0x{rng.next():016X}" for _ in range(4)))
    print("mix(0) = 0x%016X, mix(1) = 0x%016X" % (mix(0), mix(1)))
    for n, seed, epoch in ((10, 42, 0), (10, 42, 1), (10, -1, 7), (20, 123456789, 3), (1, 5, 0), (12, 2, 0), (12, 3, 0), (4, 2, 0)):
        print(f"shuffle(n={n}, seed={seed}, epoch={epoch}): {shuffle(n, seed, epoch)}")
    # A bound close to 2**63 rejects almost half of all raw draws: the rejection path is exercised.
    bound = 2**63 + 12345
    raw = SplitMix64(99)
    rejected = [k for k in range(8) if raw.next() < (M - bound) % bound]
    rng = SplitMix64(99)
    print(f"below(2**63 + 12345) from state 99: {[rng.below(bound) for _ in range(4)]}"
          f" (raw draws {rejected} of the first 8 rejected)")


if __name__ == "__main__":
    main()
