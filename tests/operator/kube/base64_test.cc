// The operator's one base64 codec (operator/kube/base64.h): round trips, and one test per
// refusal of the strict decoder.
#include "operator/kube/base64.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace modelswap::op {
namespace {

void ExpectRefused(std::string_view text, std::string_view why) {
  Result<std::string> d = Base64Decode(text);
  ASSERT_FALSE(d.has_value()) << text;
  EXPECT_EQ(d.error().code(), Code::kInvalidArgument);
  EXPECT_NE(d.error().message().find(why), std::string::npos) << d.error().message();
}

TEST(Base64, RoundTripsEveryLengthAndByte) {
  std::string all;
  for (int c = 0; c < 256; ++c)
    all.push_back(static_cast<char>(c));
  for (size_t n = 0; n <= all.size(); ++n) {
    const std::string s = all.substr(all.size() - n);
    Result<std::string> d = Base64Decode(Base64Encode(s));
    ASSERT_TRUE(d.has_value()) << n << ": " << d.error().ToString();
    EXPECT_EQ(*d, s);
  }
}

TEST(Base64, EncodesTheRfc4648Vectors) {
  const std::vector<std::pair<std::string, std::string>> vectors = {{"", ""},
                                                                    {"f", "Zg=="},
                                                                    {"fo", "Zm8="},
                                                                    {"foo", "Zm9v"},
                                                                    {"foob", "Zm9vYg=="},
                                                                    {"fooba", "Zm9vYmE="},
                                                                    {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(Base64Encode(plain), encoded);
    EXPECT_EQ(Base64Decode(encoded).value(), plain);
  }
  EXPECT_EQ(Base64Decode("+/+/").value(), "\xfb\xff\xbf");
}

TEST(Base64, LengthNotAMultipleOfFourIsRefused) {
  ExpectRefused("Zm8", "length 3 is not a multiple of 4");
  ExpectRefused("Zm9vY", "length 5");
}

TEST(Base64, ByteOutsideTheAlphabetIsRefused) {
  ExpectRefused("Zm*v", "byte 0x2a at offset 2 is not in the alphabet");
  ExpectRefused("Zm9-", "offset 3");  // URL-safe alphabet is not standard base64
  ExpectRefused(" Zm9", "offset 0");  // EVP_DecodeBlock alone would trim the space
  ExpectRefused("Zm9v\n", "length 5");
  ExpectRefused(std::string("Zm\0v", 4), "byte 0x00");
}

TEST(Base64, PaddingOnlyAtTheEndAndAtMostTwo) {
  ExpectRefused("Z===", "more than two '='");
  ExpectRefused("====", "more than two '='");
  ExpectRefused("Zm=v", "padding before the end");  // EVP_DecodeBlock reads it as zero bits
  ExpectRefused("Zg==Zg==", "padding before the end");
}

TEST(Base64, KubeconfigDataMayBreakLines) {
  EXPECT_EQ(Base64DecodeIgnoringLineBreaks("Zm9v\nYmFy\r\n").value(), "foobar");
  EXPECT_EQ(Base64DecodeIgnoringLineBreaks(" Zm9vYg== ").value(), "foob");
  // The rest stays strict.
  EXPECT_FALSE(Base64DecodeIgnoringLineBreaks("Zm9\tv").has_value());
  EXPECT_FALSE(Base64DecodeIgnoringLineBreaks("Zm9vY\n").has_value());
}

}  // namespace
}  // namespace modelswap::op
