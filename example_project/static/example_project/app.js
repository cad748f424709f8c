/*
 * The example site's single-page app: sign in, see MFA status, set up an authenticator app.
 *
 * It calls the public REST API under /api/mfa/ and the example site's two sign-in endpoints
 * (/demo/sign-in/, /demo/respond/). Tokens and challenge sessions live in the variables
 * below only: never in localStorage, sessionStorage or cookies, so reloading signs out.
 */
(function () {
  "use strict";

  var API = "/api/mfa/";
  var csrfToken = document.querySelector('meta[name="csrf-token"]').getAttribute("content");

  // --- state (memory only) ------------------------------------------------------------------
  var account = null; // {username, accessToken} once signed in
  var challenge = null; // {name, session, username} during a sign-in challenge
  var enrollment = null; // {id, flow: "account" | "challenge", challengeToken, username}
  var busy = false;

  function $(id) {
    return document.getElementById(id);
  }

  // --- views and messages -------------------------------------------------------------------
  function show(viewId) {
    var views = document.querySelectorAll("[data-view]");
    for (var i = 0; i < views.length; i++) {
      views[i].hidden = views[i].id !== viewId;
    }
    var first = $(viewId).querySelector("input:not([hidden]), button");
    if (first && first.tagName === "INPUT") {
      first.focus();
    }
  }

  function showMessage(text, kind) {
    var box = $("message");
    box.textContent = text;
    box.className = "message " + (kind || "error");
    box.hidden = false;
  }

  function clearMessage() {
    $("message").hidden = true;
    $("message").textContent = "";
  }

  function setBusy(value) {
    busy = value;
    document.body.classList.toggle("busy", value);
    var buttons = document.querySelectorAll("main button");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].disabled = value;
    }
  }

  // --- HTTP ---------------------------------------------------------------------------------
  function ApiError(status, data, retryAfter) {
    this.status = status;
    this.data = data || {};
    this.code = this.data.code || (status === 0 ? "network" : "error");
    this.retryAfter = retryAfter ? parseInt(retryAfter, 10) : null;
  }

  function request(method, url, body, options) {
    var headers = { Accept: "application/json", "X-CSRFToken": csrfToken };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
    }
    if (options && options.bearer && account) {
      headers.Authorization = "Bearer " + account.accessToken;
    }
    return fetch(url, {
      method: method,
      headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    }).then(
      function (response) {
        if (response.status === 204) {
          return null;
        }
        return response.json().then(
          function (data) {
            if (!response.ok) {
              throw new ApiError(response.status, data, response.headers.get("Retry-After"));
            }
            return data;
          },
          function () {
            throw new ApiError(response.status, null, response.headers.get("Retry-After"));
          }
        );
      },
      function () {
        throw new ApiError(0, null, null);
      }
    );
  }

  function api(method, path, body) {
    return request(method, API + path, body, { bearer: true });
  }

  // Run one user action: one request at a time, errors shown in the message box.
  function act(work, onError) {
    if (busy) {
      return;
    }
    clearMessage();
    setBusy(true);
    Promise.resolve()
      .then(work)
      .catch(function (error) {
        if (!(error instanceof ApiError)) {
          error = new ApiError(-1, { code: "error", detail: String(error) }, null);
        }
        showMessage(describe(error));
        if (onError) {
          onError(error);
        }
        handleAuthLoss(error);
      })
      .then(function () {
        setBusy(false);
      });
  }

  // --- what every error code means to the person in front of the screen ----------------------
  function plural(count, one, many) {
    return count === 1 ? one : many.replace("%(count)s", String(count));
  }

  function seconds(error, fallback) {
    var wait = error.retryAfter || fallback;
    return plural(wait, "1 second", "%(count)s seconds");
  }

  function fieldErrors(data) {
    var fields = data.fields || {};
    var labels = {
      user_code: "Code",
      friendly_device_name: "Device name",
      username: "Username",
      password: "Password",
      new_password: "New password",
      code: "Code",
    };
    var parts = [];
    Object.keys(fields).forEach(function (name) {
      var messages = [].concat(fields[name]).join(" ");
      parts.push(labels[name] ? labels[name] + ": " + messages : messages);
    });
    return parts.join(" ");
  }

  function describe(error) {
    var data = error.data;
    switch (error.code) {
      case "invalid":
        return "Please check what you typed. " + (fieldErrors(data) || data.detail || "");
      case "invalid_code":
        if (data.attempts_remaining === 0) {
          return "That code was not accepted, and that was the last try: this setup is locked. Start again.";
        }
        if (typeof data.attempts_remaining === "number") {
          return (
            "That code was not accepted. Check that your phone's clock is right and type the newest code. " +
            plural(data.attempts_remaining, "1 attempt left.", "%(count)s attempts left.")
          );
        }
        return "That code was not accepted. Type the newest code from your authenticator app.";
      case "not_authenticated":
      case "token_invalid":
        return "Your sign-in has ended. Please sign in again.";
      case "reauthentication_required":
        return "For your security, sign in again (your sign-in is too old to change your authenticator).";
      case "not_found":
        return "This setup no longer exists. Start again.";
      case "enrollment_locked":
        return "Too many wrong codes: this setup is locked. Start again to get a new QR code.";
      case "enrollment_not_pending":
        return "This setup is already finished or was cancelled. Start again if you need a new one.";
      case "start_busy":
        return "Another setup of your account is being started or checked right now. Try again in a moment.";
      case "enrollment_expired":
        return "This setup expired before a code was confirmed. Start again to get a new QR code.";
      case "throttled":
        if (data.reset_required) {
          return "Too many wrong codes on this account. Waiting will not help: ask the help desk to reset your two-step sign-in.";
        }
        return "Too many attempts. Please wait " + seconds(error, 60) + " and try again.";
      case "cognito_unavailable":
        return (
          "Amazon Cognito is not answering right now. Nothing was changed; try again in " +
          seconds(error, 5) +
          "."
        );
      case "cognito_error":
        return "Cognito refused the request because of a configuration problem. The site's log has the details.";
      case "sign_in_failed":
        return "Incorrect username or password.";
      case "session_expired":
        return "This sign-in took too long. Please sign in again.";
      case "unsupported_challenge":
        return "This user pool asks for a sign-in step (" + (data.challenge_name || "?") + ") this demo does not handle.";
      case "network":
        return "The server could not be reached. Check that the demo is still running.";
      default:
        return data.detail || "Something went wrong (HTTP " + error.status + ").";
    }
  }

  var ENROLLMENT_OVER = ["enrollment_locked", "enrollment_expired", "enrollment_not_pending", "not_found"];

  // A token or challenge session that is no longer accepted: start from the sign-in form.
  function handleAuthLoss(error) {
    if (["not_authenticated", "token_invalid", "reauthentication_required", "session_expired"].indexOf(error.code) >= 0) {
      resetToSignIn();
    }
  }

  function enrollmentIsChallenge() {
    return enrollment !== null && enrollment.flow === "challenge";
  }

  // --- signing in ---------------------------------------------------------------------------
  function resetToSignIn() {
    forgetSecret();
    account = null;
    challenge = null;
    enrollment = null;
    $("session").hidden = true;
    $("whoami").textContent = "";
    $("password").value = "";
    $("new-password").value = "";
    show("view-sign-in");
  }

  function signedIn(username, accessToken) {
    account = { username: username, accessToken: accessToken };
    challenge = null;
    $("whoami").textContent = username;
    $("session").hidden = false;
    $("password").value = "";
    $("new-password").value = "";
    $("mfa-code").value = "";
  }

  // A sign-in step: tokens, or the next challenge to answer.
  function handleStep(step) {
    if (step.status === "signed_in") {
      signedIn(step.username, step.access_token);
      return loadAccount();
    }
    challenge = { name: step.challenge_name, session: step.session, username: step.username };
    if (step.challenge_name === "NEW_PASSWORD_REQUIRED") {
      show("view-new-password");
    } else if (step.challenge_name === "SOFTWARE_TOKEN_MFA") {
      show("view-mfa-code");
    } else if (step.challenge_name === "MFA_SETUP") {
      return startChallengeEnrollment();
    }
    return null;
  }

  function respond(extra) {
    var body = { challenge_name: challenge.name, session: challenge.session, username: challenge.username };
    Object.keys(extra).forEach(function (key) {
      body[key] = extra[key];
    });
    return request("POST", "/demo/respond/", body).then(handleStep);
  }

  $("sign-in-form").addEventListener("submit", function (event) {
    event.preventDefault();
    act(function () {
      return request("POST", "/demo/sign-in/", {
        username: $("username").value.trim(),
        password: $("password").value,
      }).then(handleStep);
    });
  });

  $("new-password-form").addEventListener("submit", function (event) {
    event.preventDefault();
    act(function () {
      return respond({ new_password: $("new-password").value });
    });
  });

  $("mfa-code-form").addEventListener("submit", function (event) {
    event.preventDefault();
    act(function () {
      return respond({ code: $("mfa-code").value.trim() });
    });
  });

  $("sign-out").addEventListener("click", function () {
    clearMessage();
    resetToSignIn();
  });

  // --- the account page -----------------------------------------------------------------------
  function timeOf(iso) {
    return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function renderStatus(status) {
    var on = status.software_token_mfa_enabled;
    var badge = $("status-totp");
    badge.textContent = on ? "On" : "Off";
    badge.className = "badge " + (on ? "on" : "off");
    $("status-preferred").textContent = status.preferred_mfa === "SOFTWARE_TOKEN_MFA" ? "Yes" : "No";
    var pending = status.pending_enrollment;
    $("status-pending-row").hidden = !pending;
    $("status-pending").textContent = pending
      ? "Waiting for a code until " + timeOf(pending.expires_at) + ". Starting again replaces it."
      : "";
    $("start-enrollment").textContent = on ? "Replace authenticator" : "Set up authenticator";
    $("turn-off").hidden = !on;
  }

  function loadAccount() {
    forgetSecret();
    enrollment = null;
    show("view-account");
    return api("GET", "status/").then(renderStatus);
  }

  $("start-form").addEventListener("submit", function (event) {
    event.preventDefault();
    act(startAccountEnrollment);
  });

  $("turn-off").addEventListener("click", function () {
    act(function () {
      return api("POST", "preference/", { enabled: false, preferred: false }).then(function (status) {
        renderStatus(status);
        showMessage("The authenticator app is turned off for your account.", "success");
      });
    });
  });

  // --- enrollment (account page and MFA_SETUP share the screen) ------------------------------
  function groupSecret(secret) {
    return secret.toUpperCase().replace(/(.{4})(?=.)/g, "$1 ");
  }

  function renderEnrollment(data, flow) {
    enrollment = {
      id: data.id,
      flow: flow,
      challengeToken: data.challenge_token || null,
      username: flow === "challenge" ? challenge.username : account.username,
      secret: data.secret_code,
    };
    $("enroll-title").textContent =
      flow === "challenge" ? "Set up two-step verification to finish signing in" : "Set up your authenticator app";
    $("qr-code").src = data.qr_code_png;
    $("secret-code").textContent = groupSecret(data.secret_code);
    $("copy-status").textContent = "";
    $("enroll-expires").textContent = "This QR code works until " + timeOf(data.expires_at) + ".";
    $("user-code").value = "";
    setEnrollmentOpen(true);
    show("view-enroll");
  }

  function startAccountEnrollment() {
    var name = $("device-name").value.trim();
    var body = name ? { friendly_device_name: name } : {};
    return api("POST", "enrollments/", body).then(
      function (data) {
        renderEnrollment(data, "account");
      },
      function (error) {
        // On a start this code means the older setup's code is being checked right now (in
        // another tab, say): nothing is over, the start can simply be repeated.
        if (error.code === "enrollment_not_pending") {
          error.code = "start_busy";
        }
        throw error;
      }
    );
  }

  function startChallengeEnrollment() {
    return request("POST", API + "challenge/enrollments/", {
      username: challenge.username,
      session: challenge.session,
    }).then(function (data) {
      renderEnrollment(data, "challenge");
    });
  }

  // The key is shown once, for one enrollment: once that enrollment is over (verified, locked,
  // expired, cancelled, or the user signed out) it leaves the page, hidden views included.
  function forgetSecret() {
    $("qr-code").removeAttribute("src");
    $("secret-code").textContent = "";
    $("copy-status").textContent = "";
    $("user-code").value = "";
    if (enrollment) {
      enrollment.secret = null;
    }
  }

  // A locked, expired or finished enrollment's QR code and key are useless: take them away.
  function setEnrollmentOpen(open) {
    ["enroll-intro", "qr-block", "secret-block", "verify-form"].forEach(function (id) {
      $(id).hidden = !open;
    });
    $("restart-row").hidden = open;
  }

  function enrollmentOver(error) {
    if (ENROLLMENT_OVER.indexOf(error.code) >= 0 || (error.code === "invalid_code" && error.data.attempts_remaining === 0)) {
      setEnrollmentOpen(false);
      forgetSecret();
    }
  }

  function verifyAccountEnrollment(code) {
    var name = $("device-name").value.trim();
    var body = { user_code: code };
    if (name) {
      body.friendly_device_name = name;
    }
    return api("POST", "enrollments/" + enrollment.id + "/verify/", body).then(function (result) {
      forgetSecret();
      enrollment = null;
      $("verified-text").textContent = result.mfa_enabled
        ? "Your authenticator app is set up" +
          (result.preferred ? " and preferred" : "") +
          ". From now on, signing in asks for its code."
        : "Your authenticator app is verified. Cognito could not be told to turn it on yet; it will be retried.";
      show("view-verified");
    });
  }

  function verifyChallengeEnrollment(code) {
    var current = enrollment;
    return request("POST", API + "challenge/enrollments/" + current.id + "/verify/", {
      challenge_token: current.challengeToken,
      user_code: code,
    }).then(function (result) {
      forgetSecret();
      enrollment = null;
      if (result.authentication_result) {
        signedIn(current.username, result.authentication_result.AccessToken);
        return loadAccount().then(finishedSetup);
      }
      // The site left RespondToAuthChallenge to the page: answer MFA_SETUP with the session,
      // then turn TOTP on with the new token (the site changes no account by a claimed name).
      challenge = { name: "MFA_SETUP", session: result.session, username: current.username };
      return respond({})
        .then(function () {
          return request("POST", API + "preference/", { enabled: true, preferred: true }, { bearer: true });
        })
        .then(loadAccount)
        .then(finishedSetup);
    });
  }

  function finishedSetup() {
    showMessage("Authenticator verified. You are signed in.", "success");
  }

  $("verify-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var code = $("user-code").value.replace(/\s+/g, "");
    act(
      function () {
        return enrollment.flow === "challenge" ? verifyChallengeEnrollment(code) : verifyAccountEnrollment(code);
      },
      function (error) {
        enrollmentOver(error);
        $("user-code").select();
      }
    );
  });

  $("cancel-enrollment").addEventListener("click", function () {
    if (enrollmentIsChallenge()) {
      // Abandoning MFA_SETUP abandons the sign-in: the pool requires an authenticator.
      clearMessage();
      resetToSignIn();
      showMessage("Sign-in cancelled: this user pool requires an authenticator app.", "info");
      return;
    }
    var id = enrollment.id;
    act(function () {
      return api("DELETE", "enrollments/" + id + "/").then(loadAccount);
    });
  });

  $("restart-enrollment").addEventListener("click", function () {
    if (enrollmentIsChallenge()) {
      // The challenge Session is spent or too old: a new sign-in brings a new one.
      resetToSignIn();
      showMessage("Sign in again to get a new QR code.", "info");
      return;
    }
    act(startAccountEnrollment);
  });

  $("back-to-account").addEventListener("click", function () {
    act(loadAccount);
  });

  // --- copy the secret ----------------------------------------------------------------------
  $("copy-secret").addEventListener("click", function () {
    var secret = (enrollment && enrollment.secret) || "";
    var done = function () {
      $("copy-status").textContent = "Copied.";
    };
    var fallback = function () {
      var range = document.createRange();
      range.selectNodeContents($("secret-code"));
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      $("copy-status").textContent = "Selected: press Ctrl+C (or \u2318C) to copy.";
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(secret).then(done, fallback);
    } else {
      fallback();
    }
  });

  // Codes are digits only: drop anything else as it is typed or pasted.
  ["user-code", "mfa-code"].forEach(function (id) {
    $(id).addEventListener("input", function (event) {
      var digits = event.target.value.replace(/[^0-9]/g, "").slice(0, 6);
      if (digits !== event.target.value) {
        event.target.value = digits;
      }
    });
  });

  show("view-sign-in");
})();
