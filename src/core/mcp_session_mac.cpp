#include "mcp_session/mac.hpp"

#include <cstring>

namespace mcp_session {
namespace {

constexpr std::uint32_t round_constants[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

constexpr std::size_t block_size = 64;

std::uint32_t rotr(std::uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

// Streams bytes through the compression function one 64-byte block at a time.
class sha256_state {
public:
    void update(std::string_view bytes)
    {
        for (const char c : bytes) {
            block_[filled_++] = static_cast<std::uint8_t>(c);
            if (filled_ == block_size) {
                compress();
                filled_ = 0;
            }
        }
        length_ += bytes.size();
    }

    sha256_digest finish()
    {
        const std::uint64_t bits = length_ * 8;
        block_[filled_++] = 0x80;
        if (filled_ > block_size - 8) {
            std::memset(block_ + filled_, 0, block_size - filled_);
            compress();
            filled_ = 0;
        }
        std::memset(block_ + filled_, 0, block_size - 8 - filled_);
        for (int i = 0; i < 8; ++i) {
            block_[block_size - 1 - static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(bits >> (8 * i));
        }
        compress();
        sha256_digest out{};
        for (std::size_t i = 0; i < 8; ++i) {
            for (std::size_t j = 0; j < 4; ++j) {
                out[4 * i + j] = static_cast<std::uint8_t>(h_[i] >> (24 - 8 * j));
            }
        }
        return out;
    }

private:
    void compress()
    {
        std::uint32_t w[64];
        for (std::size_t i = 0; i < 16; ++i) {
            w[i] = static_cast<std::uint32_t>(block_[4 * i]) << 24 | static_cast<std::uint32_t>(block_[4 * i + 1]) << 16 |
                   static_cast<std::uint32_t>(block_[4 * i + 2]) << 8 | static_cast<std::uint32_t>(block_[4 * i + 3]);
        }
        for (std::size_t i = 16; i < 64; ++i) {
            const std::uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
            const std::uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        std::uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4], f = h_[5], g = h_[6], h = h_[7];
        for (std::size_t i = 0; i < 64; ++i) {
            const std::uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) +
                                     round_constants[i] + w[i];
            const std::uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            h = g;
            g = f;
            f = e;
            e = d + t1;
            d = c;
            c = b;
            b = a;
            a = t1 + t2;
        }
        h_[0] += a;
        h_[1] += b;
        h_[2] += c;
        h_[3] += d;
        h_[4] += e;
        h_[5] += f;
        h_[6] += g;
        h_[7] += h;
    }

    std::uint32_t h_[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    std::uint8_t block_[block_size] = {};
    std::size_t filled_ = 0;
    std::uint64_t length_ = 0;
};

std::string_view as_view(const sha256_digest& d) { return {reinterpret_cast<const char*>(d.data()), d.size()}; }

}  // namespace

sha256_digest sha256(std::string_view bytes)
{
    sha256_state s;
    s.update(bytes);
    return s.finish();
}

sha256_digest hmac_sha256(std::string_view key, std::string_view bytes)
{
    std::uint8_t padded[block_size] = {};
    if (key.size() > block_size) {
        const sha256_digest short_key = sha256(key);
        std::memcpy(padded, short_key.data(), short_key.size());
    } else {
        std::memcpy(padded, key.data(), key.size());
    }
    char inner_pad[block_size];
    char outer_pad[block_size];
    for (std::size_t i = 0; i < block_size; ++i) {
        inner_pad[i] = static_cast<char>(padded[i] ^ 0x36);
        outer_pad[i] = static_cast<char>(padded[i] ^ 0x5c);
    }
    sha256_state inner;
    inner.update({inner_pad, block_size});
    inner.update(bytes);
    const sha256_digest inner_digest = inner.finish();
    sha256_state outer;
    outer.update({outer_pad, block_size});
    outer.update(as_view(inner_digest));
    return outer.finish();
}

bool same_digest(const std::uint8_t* a, const std::uint8_t* b, std::size_t size)
{
    std::uint8_t diff = 0;
    for (std::size_t i = 0; i < size; ++i) {
        diff |= static_cast<std::uint8_t>(a[i] ^ b[i]);
    }
    return diff == 0;
}

}  // namespace mcp_session
