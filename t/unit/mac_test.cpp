#include "mcp_session/mac.hpp"

#include <boost/test/unit_test.hpp>

#include <string>

using namespace mcp_session;

namespace {

std::string hex(const sha256_digest& d)
{
    static const char digits[] = "0123456789abcdef";
    std::string out;
    for (const std::uint8_t b : d) {
        out += digits[b >> 4];
        out += digits[b & 15];
    }
    return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(mac)

// FIPS 180-4 examples, including a message whose padding needs a second block.
BOOST_AUTO_TEST_CASE(sha256_matches_the_standard_vectors)
{
    BOOST_TEST(hex(sha256("")) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    BOOST_TEST(hex(sha256("abc")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    BOOST_TEST(hex(sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")) ==
               "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    BOOST_TEST(hex(sha256(std::string(1000000, 'a'))) ==
               "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// RFC 4231 test cases 1, 2 and 6 (a key longer than the block is hashed first).
BOOST_AUTO_TEST_CASE(hmac_sha256_matches_rfc_4231)
{
    BOOST_TEST(hex(hmac_sha256(std::string(20, '\x0b'), "Hi There")) ==
               "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    BOOST_TEST(hex(hmac_sha256("Jefe", "what do ya want for nothing?")) ==
               "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    BOOST_TEST(hex(hmac_sha256(std::string(131, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First")) ==
               "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

BOOST_AUTO_TEST_CASE(same_digest_compares_every_byte)
{
    const sha256_digest a = sha256("a");
    sha256_digest b = a;
    BOOST_TEST(same_digest(a.data(), b.data(), a.size()));
    b[31] ^= 1;
    BOOST_TEST(!same_digest(a.data(), b.data(), a.size()));
    b = a;
    b[0] ^= 0x80;
    BOOST_TEST(!same_digest(a.data(), b.data(), a.size()));
}

BOOST_AUTO_TEST_SUITE_END()
