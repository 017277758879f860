// The keys and clock of token_fuzz, shared with make_seeds so the seed
// corpus holds tokens that verify.
#pragma once

namespace fuzz {

inline constexpr char kPersonKey[] = "fuzz-person-key-0123456789abcdef";
inline constexpr char kServiceSecret[] = "fuzz-service-secret-0123456789ab";
// 2026-11-15T00:00:00Z: the seeds' iat/exp are around it.
inline constexpr long kNowUnixSeconds = 1794700800;

}  // namespace fuzz
