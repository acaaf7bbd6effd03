// The agent's webhook as the forges call it: GitHub, Gitea/Forgejo and GitLab push webhooks
// with payloads shaped as those forges send them (trimmed: the fields around `ref` kept) and
// each forge's own signature scheme, computed here; then over the real server.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>

#include <atomic>
#include <map>
#include <string>

#include "reconciler/cli/webhook.h"

namespace edgeplane::cli {
namespace {

constexpr const char* kSecret = "It's a Secret to Everybody";

// Lower-case hex HMAC-SHA256, computed independently of the code under test.
std::string hmacHex(const std::string& key, const std::string& body) {
  unsigned char mac[32];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[mac[i] >> 4];
    out += kHex[mac[i] & 0xf];
  }
  return out;
}

// GitHub's documented example: secret "It's a Secret to Everybody", body "Hello, World!".
TEST(ForgeWebhook, GithubsDocumentedSignatureVector) {
  EXPECT_EQ(hmacHex(kSecret, "Hello, World!"),
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
  EXPECT_TRUE(verifyWebhookSignature(
      kSecret, "Hello, World!",
      "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"));
}

std::string githubPush(const std::string& ref) {
  return R"({"ref":")" + ref +
         R"(","before":"6113728f27ae82c7b1a177c8d03f9e96e0adf246","after":"0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c","repository":{"id":186853002,"node_id":"MDEwOlJlcG9zaXRvcnkxODY4NTMwMDI=","name":"edge-config","full_name":"ops/edge-config","private":true,"owner":{"name":"ops","login":"ops"},"default_branch":"main","master_branch":"main"},"pusher":{"name":"alice","email":"alice@example.com"},"sender":{"login":"alice","id":21031067,"type":"User"},"created":false,"deleted":false,"forced":false,"base_ref":null,"compare":"https://github.com/ops/edge-config/compare/6113728f27ae...0d1a26e67d8f","commits":[{"id":"0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c","tree_id":"f9d2a07e9488b91af2641b26b9407fe22a451433","distinct":true,"message":"tenant-a: add vm-124","timestamp":"2026-12-03T14:02:03+00:00","author":{"name":"Alice","email":"alice@example.com","username":"alice"},"added":["config/tenant-a/vm-124.toml"],"removed":[],"modified":[]}],"head_commit":{"id":"0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c","message":"tenant-a: add vm-124"}})";
}

const std::string kGithubPing =
    R"({"zen":"Keep it logically awesome.","hook_id":481052361,"hook":{"type":"Repository","id":481052361,"name":"web","active":true,"events":["push"],"config":{"content_type":"json","insecure_ssl":"0","url":"https://edge-1.example.com/trigger"}},"repository":{"id":186853002,"name":"edge-config","full_name":"ops/edge-config"},"sender":{"login":"alice","id":21031067}})";

std::string giteaPush(const std::string& ref) {
  return R"({"ref":")" + ref +
         R"(","before":"4d8a5a7fe1b3b68ff4d5c0d6a1c77cf9a4cd6bd2","after":"9e2e1d2b2fa7b0c96d1c49e8ea5cc5d9b4b1e8c3","compare_url":"https://git.example.com/ops/edge-config/compare/4d8a5a7fe1b3...9e2e1d2b2fa7","commits":[{"id":"9e2e1d2b2fa7b0c96d1c49e8ea5cc5d9b4b1e8c3","message":"forward: vm-123-ssh\n","url":"https://git.example.com/ops/edge-config/commit/9e2e1d2b2fa7","author":{"name":"Bob","email":"bob@example.com","username":"bob"},"committer":{"name":"Bob","email":"bob@example.com","username":"bob"},"verification":null,"timestamp":"2026-12-03T14:05:00Z","added":[],"removed":[],"modified":["config/forwards.toml"]}],"total_commits":1,"head_commit":{"id":"9e2e1d2b2fa7b0c96d1c49e8ea5cc5d9b4b1e8c3"},"repository":{"id":7,"owner":{"id":2,"login":"ops"},"name":"edge-config","full_name":"ops/edge-config","private":true,"default_branch":"main"},"pusher":{"id":3,"login":"bob"},"sender":{"id":3,"login":"bob"}})";
}

std::string gitlabPush(const std::string& ref) {
  return R"({"object_kind":"push","event_name":"push","before":"95790bf891e76fee5e1747ab589903a6a1f80f22","after":"da1560886d4f094c3e6c9ef40349f7d38b5d27d7","ref":")" +
         ref +
         R"(","ref_protected":true,"checkout_sha":"da1560886d4f094c3e6c9ef40349f7d38b5d27d7","user_id":4,"user_name":"Carol","user_username":"carol","user_email":"","project_id":15,"project":{"id":15,"name":"edge-config","web_url":"https://gitlab.example.com/ops/edge-config","git_ssh_url":"git@gitlab.example.com:ops/edge-config.git","namespace":"ops","path_with_namespace":"ops/edge-config","default_branch":"main"},"commits":[{"id":"da1560886d4f094c3e6c9ef40349f7d38b5d27d7","message":"site: vm-123-web\n","title":"site: vm-123-web","timestamp":"2026-12-03T14:06:00+00:00","author":{"name":"Carol","email":"carol@example.com"},"added":[],"modified":["config/sites.toml"],"removed":[]}],"total_commits_count":1,"repository":{"name":"edge-config","homepage":"https://gitlab.example.com/ops/edge-config"}})";
}

struct Call {
  WebhookReply reply;
  int triggered = 0;
};

// POST /trigger with these headers and body against an agent following `ref`.
Call post(const std::map<std::string, std::string>& headers, const std::string& body,
          const std::optional<std::string>& ref = "main") {
  Call c;
  WebhookRequest r{"POST", "/trigger", body, headers};
  c.reply = handleWebhook(r, WebhookConfig{kSecret, ref}, [&c] { ++c.triggered; });
  return c;
}

TEST(ForgeWebhook, GithubPushToTheTrackedBranchRuns) {
  const std::string body = githubPush("refs/heads/main");
  const Call c = post({{"x-github-event", "push"},
                       {"x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"},
                       {"x-hub-signature-256", "sha256=" + hmacHex(kSecret, body)}},
                      body);
  EXPECT_EQ(c.reply.status, 202) << c.reply.body;
  EXPECT_EQ(c.triggered, 1);
  EXPECT_EQ(c.reply.body, "accepted: push to refs/heads/main\n");
}

TEST(ForgeWebhook, GithubPushElsewhereOrPingDoesNotRun) {
  const std::string other = githubPush("refs/heads/feature/x");
  Call c = post(
      {{"x-github-event", "push"}, {"x-hub-signature-256", "sha256=" + hmacHex(kSecret, other)}},
      other);
  EXPECT_EQ(c.reply.status, 200);
  EXPECT_EQ(c.triggered, 0);
  EXPECT_EQ(c.reply.body, "ignored: push to refs/heads/feature/x; this host follows main\n");
  // A tag named like the branch is not the branch.
  const std::string tag = githubPush("refs/tags/main-2026");
  c = post({{"x-github-event", "push"}, {"x-hub-signature-256", "sha256=" + hmacHex(kSecret, tag)}},
           tag);
  EXPECT_EQ(c.triggered, 0);
  // ping (sent when the webhook is created): 200 without a run.
  c = post({{"x-github-event", "ping"},
            {"x-hub-signature-256", "sha256=" + hmacHex(kSecret, kGithubPing)}},
           kGithubPing);
  EXPECT_EQ(c.reply.status, 200);
  EXPECT_EQ(c.reply.body, "pong\n");
  EXPECT_EQ(c.triggered, 0);
  // Another event: 200, no run.
  c = post({{"x-github-event", "issues"},
            {"x-hub-signature-256", "sha256=" + hmacHex(kSecret, kGithubPing)}},
           kGithubPing);
  EXPECT_EQ(c.reply.status, 200);
  EXPECT_EQ(c.triggered, 0);
}

// GitHub's and Gitea's signatures are edgeplane's own ("sha256=" + hex HMAC-SHA256 of the
// body, one secret): a forge's delivery replayed under X-Edgeplane-Signature must not run past
// the forge checks (its event and its ref). edgeplane's hook sends the pushed commit id and
// nothing else, so that is all its header accepts (found by review: any signed body ran).
TEST(ForgeWebhook, AForgeDeliveryUnderEdgeplanesHeaderDoesNotRun) {
  for (const std::string& body :
       {kGithubPing, githubPush("refs/heads/feature/x"), giteaPush("refs/heads/main"),
        std::string("{}"), std::string("0123456789abcdef0123456789abcdef0123456\n"),
        std::string("0123456789ABCDEF0123456789ABCDEF01234567")}) {
    const Call c = post({{"x-edgeplane-signature", "sha256=" + hmacHex(kSecret, body)}}, body);
    EXPECT_EQ(c.reply.status, 400) << body;
    EXPECT_EQ(c.triggered, 0) << body;
  }
  for (const std::string& commit : {std::string("0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"),
                                    std::string(64, 'e')}) {  // SHA-1 and SHA-256 repositories
    const Call c = post({{"x-edgeplane-signature", "sha256=" + hmacHex(kSecret, commit)}}, commit);
    EXPECT_EQ(c.reply.status, 202) << commit;
    EXPECT_EQ(c.triggered, 1) << commit;
  }
}

TEST(ForgeWebhook, GithubBadSignaturesAre401) {
  const std::string body = githubPush("refs/heads/main");
  const std::string good = hmacHex(kSecret, body);
  std::string upper = good;
  for (char& ch : upper) {
    ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  }
  const std::string cases[] = {
      "sha256=" + hmacHex("wrong secret", body),
      "sha256=" + hmacHex(kSecret, body + " "),  // the body changed on the way
      good,                                      // no "sha256=" prefix
      "sha1=" + good,
      "sha256=" + upper,
      "sha256=" + good.substr(1),
      "",
  };
  for (const std::string& sig : cases) {
    const Call c = post({{"x-github-event", "push"}, {"x-hub-signature-256", sig}}, body);
    EXPECT_EQ(c.reply.status, 401) << sig;
    EXPECT_EQ(c.triggered, 0) << sig;
  }
  // GitHub's old SHA-1 header alone is not accepted.
  const Call sha1 = post({{"x-github-event", "push"}, {"x-hub-signature", "sha1=0"}}, body);
  EXPECT_EQ(sha1.reply.status, 401);
}

TEST(ForgeWebhook, GiteaAndForgejoSignBareHex) {
  const std::string body = giteaPush("refs/heads/main");
  Call c = post({{"x-gitea-event", "push"},
                 {"x-gitea-delivery", "d5a4a3bb-1c31-4f86-9be6-c2f4a2f8b7d0"},
                 {"x-gitea-signature", hmacHex(kSecret, body)}},
                body);
  EXPECT_EQ(c.reply.status, 202) << c.reply.body;
  EXPECT_EQ(c.triggered, 1);
  c = post({{"x-forgejo-event", "push"}, {"x-forgejo-signature", hmacHex(kSecret, body)}}, body);
  EXPECT_EQ(c.reply.status, 202) << c.reply.body;
  // GitHub's prefixed form is not Gitea's header; a wrong key is refused.
  c = post({{"x-gitea-event", "push"}, {"x-gitea-signature", "sha256=" + hmacHex(kSecret, body)}},
           body);
  EXPECT_EQ(c.reply.status, 401);
  c = post({{"x-gitea-event", "push"}, {"x-gitea-signature", hmacHex("nope", body)}}, body);
  EXPECT_EQ(c.reply.status, 401);
  EXPECT_EQ(c.triggered, 0);
  const std::string other = giteaPush("refs/heads/dev");
  c = post({{"x-gitea-event", "push"}, {"x-gitea-signature", hmacHex(kSecret, other)}}, other);
  EXPECT_EQ(c.reply.status, 200);
  EXPECT_EQ(c.triggered, 0);
}

TEST(ForgeWebhook, GitlabSendsTheTokenItself) {
  const std::string body = gitlabPush("refs/heads/main");
  Call c = post({{"x-gitlab-event", "Push Hook"},
                 {"x-gitlab-token", kSecret},
                 {"x-gitlab-event-uuid", "b07ea8a0-4e2b-4b54-9a6d-3c1f6b1f1e55"}},
                body);
  EXPECT_EQ(c.reply.status, 202) << c.reply.body;
  EXPECT_EQ(c.triggered, 1);
  for (const std::string& token : {std::string(kSecret) + " ", std::string("It's a Secret"),
                                   std::string(), std::string("it's a secret to everybody")}) {
    c = post({{"x-gitlab-event", "Push Hook"}, {"x-gitlab-token", token}}, body);
    EXPECT_EQ(c.reply.status, 401) << token;
    EXPECT_EQ(c.triggered, 0);
  }
  const std::string other = gitlabPush("refs/heads/release");
  c = post({{"x-gitlab-event", "Push Hook"}, {"x-gitlab-token", kSecret}}, other);
  EXPECT_EQ(c.reply.status, 200);
  EXPECT_EQ(c.triggered, 0);
  c = post({{"x-gitlab-event", "Merge Request Hook"}, {"x-gitlab-token", kSecret}}, body);
  EXPECT_EQ(c.reply.status, 200);
  EXPECT_EQ(c.triggered, 0);
}

TEST(ForgeWebhook, PayloadsWithoutARefAre400AndNoHeaderIs401) {
  for (const std::string& body : {std::string("not json"), std::string(R"({"ref":42})"),
                                  std::string("[]"), std::string(R"({"after":"x"})")}) {
    const Call c = post(
        {{"x-github-event", "push"}, {"x-hub-signature-256", "sha256=" + hmacHex(kSecret, body)}},
        body);
    EXPECT_EQ(c.reply.status, 400) << body;
    EXPECT_EQ(c.triggered, 0);
  }
  const Call none = post({{"x-github-event", "push"}}, githubPush("refs/heads/main"));
  EXPECT_EQ(none.reply.status, 401);
  EXPECT_NE(none.reply.body.find("X-Gitlab-Token"), std::string::npos) << none.reply.body;
}

TEST(ForgeWebhook, WhichPushesConcernTheTrackedRef) {
  EXPECT_TRUE(pushConcernsRef("refs/heads/main", "main"));
  EXPECT_TRUE(pushConcernsRef("refs/tags/v2", "v2"));
  EXPECT_FALSE(pushConcernsRef("refs/heads/maint", "main"));
  EXPECT_FALSE(pushConcernsRef("refs/heads/feature/main", "main"));
  EXPECT_TRUE(pushConcernsRef("refs/heads/main", "refs/heads/main"));
  EXPECT_FALSE(pushConcernsRef("refs/tags/main", "refs/heads/main"));
  EXPECT_FALSE(pushConcernsRef("refs/heads/main", "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"));
  EXPECT_TRUE(pushConcernsRef("refs/heads/anything", std::nullopt));
}

// Over the real server: a GitHub push of ~300 KiB (many commits, as a big merge sends) is read
// whole and triggers; headers arrive in the forge's own spelling.
TEST(ForgeWebhook, ALargeGithubPushOverTheServer) {
  uint16_t free = 0;
  {
    Poco::Net::ServerSocket probe(Poco::Net::SocketAddress("127.0.0.1", 0));
    free = probe.address().port();
  }
  std::atomic<int> triggered{0};
  auto server = WebhookServer::start(*Endpoint::parse("127.0.0.1:" + std::to_string(free)),
                                     WebhookConfig{kSecret, "main"}, [&] { ++triggered; });
  ASSERT_TRUE(server.ok()) << server.error().message;
  std::string commits;
  for (int i = 0; i < 1500; ++i) {
    commits += std::string(i == 0 ? "" : ",") +
               R"({"id":"0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c","message":"commit )" +
               std::to_string(i) + R"(","added":["config/tenant-a/vm-)" + std::to_string(i) +
               R"(.toml"],"removed":[],"modified":[]})";
  }
  const std::string body = R"({"ref":"refs/heads/main","commits":[)" + commits + "]}";
  ASSERT_GT(body.size(), 150u * 1024);
  ASSERT_LT(body.size(), kMaxWebhookBody);
  Poco::Net::HTTPClientSession session("127.0.0.1", free);
  session.setTimeout(Poco::Timespan(5, 0));
  Poco::Net::HTTPRequest request("POST", "/trigger", Poco::Net::HTTPMessage::HTTP_1_1);
  request.setContentLength(static_cast<std::streamsize>(body.size()));
  request.setContentType("application/json");
  request.set("X-GitHub-Event", "push");
  request.set("X-Hub-Signature-256", "sha256=" + hmacHex(kSecret, body));
  session.sendRequest(request) << body;
  Poco::Net::HTTPResponse response;
  std::istream& in = session.receiveResponse(response);
  std::string answer((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(static_cast<int>(response.getStatus()), 202) << answer;
  EXPECT_EQ(triggered.load(), 1);
}

}  // namespace
}  // namespace edgeplane::cli
