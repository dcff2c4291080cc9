"""Demo data: a few hundred customers with half a year of history on every channel.

    python manage.py load_demo_data [--customers 300] [--interactions 10000] [--seed 7]

Everything goes through `interactions.services.interactions_ingest`, in time
order and in batches of at most 1,000, so identity resolution, cross-channel
conversations and auto-merges happen exactly as they would for real traffic.
The same seed gives the same customers, texts and times (relative to today).
Does nothing when customers already exist, unless --force.
"""

import random
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from customers.identities import IdentityInvalid, identity_normalize
from customers.selectors import customer_detail_queryset, customer_list, merge_list
from customers.services import customer_ids_resolve, customer_update
from interactions.ingest import IdentityIn, IngestItem
from interactions.selectors import conversation_list
from interactions.services import conversation_update, interactions_ingest

SOURCE = "demo"
HISTORY_DAYS = 200
MAX_BATCH = 1000

# --- Who -----------------------------------------------------------------------------

FIRST_EN = ["Lisa", "James", "Maria", "David", "Emma", "Noah", "Olivia", "Lucas", "Sophie", "Daniel", "Hannah",
            "Ben", "Chloe", "Adam", "Grace", "Leo", "Mia", "Ethan", "Zoe", "Jonas", "Clara", "Felix", "Ava", "Max"]
LAST_EN = ["Miller", "Schmidt", "Garcia", "Brown", "Novak", "Rossi", "Jensen", "Dubois", "Keller", "Walsh",
           "Silva", "Berg", "Young", "Clarke", "Meyer", "Costa", "Evans", "Larsen"]
FIRST_FA = ["سارا", "علی", "مریم", "رضا", "زهرا", "محمد", "نگار", "امیر", "فاطمه", "حسین", "لیلا", "کاوه", "شیرین", "بهرام"]
LAST_FA = ["احمدی", "محمدی", "حسینی", "رضایی", "کریمی", "موسوی", "جعفری", "صادقی", "رحیمی", "نوری", "تهرانی"]
LATIN_FA = {"سارا": "sara", "علی": "ali", "مریم": "maryam", "رضا": "reza", "زهرا": "zahra", "محمد": "mohammad",
            "نگار": "negar", "امیر": "amir", "فاطمه": "fatemeh", "حسین": "hossein", "لیلا": "leila", "کاوه": "kaveh",
            "شیرین": "shirin", "بهرام": "bahram"}
FIRST_AR = ["أحمد", "فاطمة", "عمر", "ليلى", "خالد", "نور", "يوسف", "مريم", "سلمى", "كريم", "هدى", "طارق"]
LAST_AR = ["الحسن", "العلي", "المنصور", "الخطيب", "حداد", "النجار", "السعدي", "الشامي"]
LATIN_AR = {"أحمد": "ahmad", "فاطمة": "fatima", "عمر": "omar", "ليلى": "layla", "خالد": "khalid", "نور": "nour",
            "يوسف": "yousef", "مريم": "mariam", "سلمى": "salma", "كريم": "karim", "هدى": "huda", "طارق": "tariq"}
DOMAINS = ["example.com", "mail.example.org", "example.net", "post.example"]

AGENTS = [
    ("sara.agent", "Sara", "Ahmadi"),
    ("omar.agent", "Omar", "Haddad"),
    ("lisa.agent", "Lisa", "Berg"),
    ("david.agent", "David", "Novak"),
    ("negar.agent", "Negar", "Karimi"),
    ("james.agent", "James", "Walsh"),
]
BOT_NAME = "Helper bot"
SEGMENTS = ["vip", "b2b", "new", "loyal"]

# --- What they say -----------------------------------------------------------------------
# (text, sentiment) per language and mood. Sentiment as a provider would score it; some
# items go in unscored so that the configured analyser (English only by default) scores them.

TEXT = {
    "en": {
        "complaint": [
            ("My order still hasn't arrived and nobody answers. This is really frustrating.", -0.7),
            ("I was charged twice for the same order. Please fix this now.", -0.6),
            ("The app keeps logging me out since yesterday, I can't use it at all.", -0.5),
            ("The package arrived damaged. Very disappointed.", -0.8),
            ("I've been waiting 40 minutes on the phone. Terrible service.", -0.9),
        ],
        "question": [
            ("Hi, can I change the delivery address for my order?", 0.0),
            ("Do you ship to Norway, and how long does it take?", 0.1),
            ("How do I reset my password?", 0.0),
            ("Is the blue jacket available in size M again?", 0.1),
        ],
        "followup": [
            ("Any news? I wrote about this already.", -0.4),
            ("Still not solved, please have a look.", -0.5),
        ],
        "happy": [
            ("It arrived today, thank you so much for sorting it out!", 0.8),
            ("Perfect, that worked. Great help, thanks!", 0.7),
            ("Thanks, refund received. Really appreciate the quick fix.", 0.6),
            ("Love it, you guys are great!", 0.9),
        ],
        "agent": [
            "Thanks for telling us, and sorry for the trouble. I'm looking into it right now.",
            "I've checked your order: it's on its way and should arrive tomorrow.",
            "I've refunded the duplicate charge; you'll see it within 3 days.",
            "Done — you can log in again now. Let me know if anything else comes up.",
            "I've sent a replacement today, no need to return the damaged one.",
        ],
        "bot": [
            "Hi! I'm the helper bot. I can track orders and answer common questions.",
            "I've found your order. Let me connect you with a colleague for this.",
        ],
        "subject": ["Order problem", "Question about delivery", "Refund", "Login issue", "Damaged package"],
    },
    "fa": {
        "complaint": [
            ("سفارشم هنوز نرسیده و کسی جواب نمی‌دهد. واقعاً ناراحتم.", -0.7),
            ("برای یک سفارش دو بار از حسابم پول کم شده است!", -0.6),
            ("از دیروز نمی‌توانم وارد برنامه شوم.", -0.5),
            ("بسته آسیب‌دیده به دستم رسید. خیلی ناامید شدم.", -0.8),
        ],
        "question": [
            ("سلام، می‌توانم آدرس ارسال را تغییر دهم؟", 0.0),
            ("این کالا کی دوباره موجود می‌شود؟", 0.1),
        ],
        "followup": [("خبری نشد؟ قبلاً هم پیام داده بودم.", -0.4)],
        "happy": [
            ("امروز رسید، خیلی ممنون از پیگیری‌تان!", 0.8),
            ("عالی بود، مشکلم حل شد. سپاس!", 0.7),
        ],
        "agent": [
            "از اطلاع شما ممنونیم و بابت این مشکل عذر می‌خواهیم. همین الان بررسی می‌کنم.",
            "مبلغ اضافه به حساب شما بازگردانده شد.",
            "یک بسته‌ی جایگزین امروز برایتان ارسال شد.",
        ],
        "bot": ["سلام! من دستیار خودکار هستم. چطور می‌توانم کمک کنم؟"],
        "subject": ["مشکل سفارش", "پرسش درباره‌ی ارسال", "بازپرداخت"],
    },
    "ar": {
        "complaint": [
            ("لم يصل طلبي حتى الآن ولا أحد يرد. هذا مزعج جداً.", -0.7),
            ("تم خصم المبلغ مرتين لنفس الطلب!", -0.6),
            ("وصل الطرد تالفاً. أنا محبط جداً.", -0.8),
        ],
        "question": [
            ("مرحباً، هل يمكنني تغيير عنوان التوصيل؟", 0.0),
            ("متى يتوفر هذا المنتج مرة أخرى؟", 0.1),
        ],
        "followup": [("هل من جديد؟ راسلتكم من قبل.", -0.4)],
        "happy": [
            ("وصل اليوم، شكراً جزيلاً على المساعدة!", 0.8),
            ("ممتاز، تم حل المشكلة. شكراً لكم!", 0.7),
        ],
        "agent": [
            "شكراً لإبلاغنا ونعتذر عن الإزعاج. أتحقق من الأمر الآن.",
            "تم استرداد المبلغ المخصوم مرتين.",
            "أرسلنا لك طرداً بديلاً اليوم.",
        ],
        "bot": ["مرحباً! أنا المساعد الآلي. كيف يمكنني مساعدتك؟"],
        "subject": ["مشكلة في الطلب", "سؤال عن التوصيل", "استرداد"],
    },
}
PAGES = ["/", "/products/jacket-blue", "/products/sneakers", "/sale", "/help/shipping", "/account/orders", "/cart"]
PRODUCTS = [("Blue jacket", "89.00"), ("Sneakers", "120.00"), ("Scarf", "25.00"), ("Backpack", "64.50"),
            ("Gift card", "50.00"), ("Wool hat", "19.90")]
POSTS = ["post-summer-sale", "post-new-collection", "post-store-opening", "post-giveaway", "post-behind-the-scenes"]
MESSAGE_CHANNELS = ["chat", "email", "phone", "sms", "whatsapp", "facebook", "instagram"]
BOT_CHANNELS = {"chat", "whatsapp", "facebook"}


@dataclass
class Persona:
    number: int
    name: str
    language: str
    identities: dict  # kind -> raw value as a provider would send it
    channels: list
    # A customer first seen as two people: these identity kinds arrive apart until `join_at`.
    split: tuple = ()
    join_at: object = None
    first_at: object = None
    attributes: dict = field(default_factory=dict)


@dataclass
class Demo:
    now: object = None
    items: list = field(default_factory=list)
    # external ids of items that carry both halves of a split persona
    joins: set = field(default_factory=set)
    persona_of: dict = field(default_factory=dict)  # external_id -> persona number
    resolve: dict = field(default_factory=dict)  # conversation opener external_id -> resolved at
    agent_of: dict = field(default_factory=dict)  # conversation opener external_id -> the agent's user id
    unhappy_now: set = field(default_factory=set)


class Generator:
    """Deterministic stories per customer: questions, complaints that end happily (or not yet), purchases, visits."""

    def __init__(self, *, customers, interactions, seed, now, agent_ids):
        self.rng = random.Random(seed)
        self.customers = customers
        self.budget = interactions
        self.now = now.replace(microsecond=0)
        self.start = self.now - timedelta(days=HISTORY_DAYS)
        self.agent_ids = agent_ids
        self.sequence = 0
        self.demo = Demo(now=self.now)

    # --- people ---

    def persona(self, number):
        rng = self.rng
        roll = rng.random()
        if roll < 0.2:
            language, first, last = "fa", rng.choice(FIRST_FA), rng.choice(LAST_FA)
            latin, region_phone = LATIN_FA[first], self.phone(self.iranian_phone)
        elif roll < 0.3:
            language, first, last = "ar", rng.choice(FIRST_AR), rng.choice(LAST_AR)
            latin = LATIN_AR[first]
            region_phone = self.phone(lambda: f"+971 5{rng.choice('02458')} {rng.randint(1000000, 9999999)}")
        else:
            language, first, last = "en", rng.choice(FIRST_EN), rng.choice(LAST_EN)
            latin = first.lower()
            region_phone = self.phone(lambda: rng.choice([
                f"+49 15{rng.choice('12579')}{rng.randint(10000000, 99999999)}",
                f"+1 (415) {rng.randint(200, 999)}-{rng.randint(1000, 9999)}",
                f"+44 7{rng.randint(400, 999)} {rng.randint(100000, 999999)}",
            ]))
        handle = f"{latin}{number:03d}"
        identities = {
            # Providers send identities unnormalised: mixed case, spaces, Persian digits.
            "email": f"{latin.capitalize()}.{number:03d}@{rng.choice(DOMAINS)}",
            "phone": region_phone,
            "whatsapp": region_phone,
            "facebook": str(10_000_000_000 + number * 7919),
            "instagram": f"@{handle}",
            "chat": f"visitor-{number:05d}",
        }
        channels = ["web", "chat", "email"] + rng.sample(["phone", "sms", "whatsapp", "facebook", "instagram"], rng.randint(1, 4))
        attributes = {"language": language, "plan": rng.choice(["free", "plus", "pro"])}
        persona = Persona(number=number, name=f"{first} {last}", language=language, identities=identities,
                          channels=channels, attributes=attributes)
        # One in twelve is first seen as two people: chatting anonymously, and by email.
        if number % 12 == 5:
            persona.split = ("chat", "email")
            persona.join_at = self.start + timedelta(days=rng.uniform(HISTORY_DAYS * 0.5, HISTORY_DAYS * 0.9))
        return persona

    def phone(self, make):
        """A valid number from `make` (written as a customer would), trying again when it is not one."""
        for _ in range(100):
            candidate = make()
            try:
                identity_normalize("phone", candidate)
            except IdentityInvalid:
                continue
            return candidate
        raise CommandError("could not generate a valid phone number")

    def iranian_phone(self):
        digits = f"0912{self.rng.randint(1000000, 9999999)}"
        # Half of them written in Persian digits, as Iranian customers type them.
        if self.rng.random() < 0.5:
            digits = digits.translate(str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹"))
        return "+98" + digits[1:]

    # --- items ---

    def item(self, persona, *, at, channel, kind, direction, author, body="", sentiment=None, intent="",
             subject="", data=None, identity_kinds=None, agent=None, incident_at=None, name=True):
        self.sequence += 1
        external_id = f"{SOURCE}-{self.sequence:06d}"
        kinds = identity_kinds or self.identity_kinds_for(persona, channel, at)
        # As a provider sends them; ingestion normalises (and matches) them.
        identities = [IdentityIn(kind, persona.identities[kind]) for kind in kinds]
        if persona.split and set(persona.split) <= set(kinds):
            self.demo.joins.add(external_id)
        author_name = ""
        if author == "customer":
            author_name = persona.name
        elif author == "bot":
            author_name = BOT_NAME
        elif author == "agent":
            author_name = agent[1]
        # Only the email half of a split customer has their name, until they are joined.
        attach_name = name and not (persona.split and at < persona.join_at and "email" not in kinds)
        item = IngestItem(
            source=SOURCE,
            external_id=external_id,
            channel=channel,
            kind=kind,
            direction=direction,
            author_type=author,
            occurred_at=at,
            identities=identities,
            customer_name=persona.name if attach_name else "",
            customer_attributes=persona.attributes if attach_name else {},
            subject=subject,
            body=body,
            author_name=author_name,
            agent_id=agent[0] if agent else None,
            sentiment=sentiment,
            intent=intent,
            incident_at=incident_at,
            data=data or {},
        )
        self.demo.items.append(item)
        self.demo.persona_of[external_id] = persona.number
        return item

    def identity_kinds_for(self, persona, channel, at):
        if persona.split and at < persona.join_at:
            # Before the join, chat and web know the anonymous visitor; everything else knows the email person.
            return ["chat"] if channel in ("chat", "web") else ["email"]
        if persona.split and channel == "chat" and abs((at - persona.join_at).total_seconds()) < 1:
            return ["chat", "email"]
        return {
            "chat": ["chat"],
            "web": ["chat"],
            "email": ["email"],
            "phone": ["phone"],
            "sms": ["phone"],
            "whatsapp": ["whatsapp"],
            "facebook": ["facebook"],
            "instagram": ["instagram"],
            "store": ["email"],
        }[channel]

    def text(self, persona, mood):
        entry = self.rng.choice(TEXT[persona.language][mood])
        if isinstance(entry, tuple):
            text, sentiment = entry
            # About a fifth arrive unscored: the analyser (or nobody) scores them.
            if self.rng.random() < 0.2:
                return text, None
            return text, round(max(-1.0, min(1.0, sentiment + self.rng.uniform(-0.1, 0.1))), 2)
        return entry, None

    def agent(self):
        return self.rng.choice(self.agent_ids)

    # --- stories ---

    def support_story(self, persona, at, *, ends_happy=True):
        """A complaint or question, maybe a bot, an agent, maybe a follow-up on another channel, then happiness."""
        rng = self.rng
        channel = rng.choice([c for c in persona.channels if c in MESSAGE_CHANNELS])
        complaint = rng.random() < 0.6
        mood = "complaint" if complaint else "question"
        body, sentiment = self.text(persona, mood)
        subject = rng.choice(TEXT[persona.language]["subject"]) if channel == "email" else ""
        kind = "call" if channel == "phone" else "message"
        incident_at = at - timedelta(hours=rng.uniform(2, 72)) if complaint and rng.random() < 0.5 else None
        call = {"duration_seconds": rng.randint(60, 1500)} if kind == "call" else {}
        opener = self.item(persona, at=at, channel=channel, kind=kind, direction="inbound", author="customer",
                           body=body, sentiment=sentiment, intent="complaint" if complaint else "question",
                           subject=subject, incident_at=incident_at, data=call)
        t = at
        bot_only = False
        if channel in BOT_CHANNELS and rng.random() < 0.6:
            t += timedelta(seconds=rng.randint(2, 20))
            self.item(persona, at=t, channel=channel, kind="message", direction="outbound", author="bot",
                      body=self.text(persona, "bot")[0], name=False)
            # A question the bot answers alone; complaints go on to a human.
            bot_only = not complaint and rng.random() < 0.5
        agent = self.agent()
        if kind != "call" and not bot_only:
            t += timedelta(minutes=rng.choice([1, 2, 4, 9, 25, 60, 180, 600]))
            self.item(persona, at=t, channel=channel, kind="message", direction="outbound", author="agent",
                      body=self.text(persona, "agent")[0], agent=agent, name=False)
        if rng.random() < 0.35:
            # The customer follows up, often on another channel: the same conversation continues.
            t += timedelta(hours=rng.uniform(2, 40))
            other = rng.choice([c for c in persona.channels if c in MESSAGE_CHANNELS])
            body, sentiment = self.text(persona, "followup")
            self.item(persona, at=t, channel=other, kind="call" if other == "phone" else "message",
                      direction="inbound", author="customer", body=body, sentiment=sentiment)
            t += timedelta(minutes=rng.randint(5, 120))
            if other != "phone":
                self.item(persona, at=t, channel=other, kind="message", direction="outbound", author="agent",
                          body=self.text(persona, "agent")[0], agent=agent, name=False)
        if rng.random() < 0.25:
            t += timedelta(minutes=rng.randint(1, 30))
            self.item(persona, at=t, channel="internal", kind="note", direction="internal", author="agent",
                      body=rng.choice(["Refund approved.", "Escalated to the warehouse.", "Called the courier.",
                                       "Customer prefers WhatsApp.", "یادداشت: مشتری ویژه است."]),
                      agent=agent, identity_kinds=self.identity_kinds_for(persona, channel, t), name=False)
        if not ends_happy:
            self.demo.unhappy_now.add(persona.number)
            return t
        # Happy again within minutes, hours or days.
        t += timedelta(hours=rng.choice([0.3, 1, 2, 5, 12, 24, 48, 96]) * rng.uniform(0.5, 1.5))
        happy_channel = rng.choice([channel, channel, "email", "chat"])
        if happy_channel not in persona.channels:
            happy_channel = channel
        body, sentiment = self.text(persona, "happy")
        self.item(persona, at=t, channel=happy_channel, kind="call" if happy_channel == "phone" else "message",
                  direction="inbound", author="customer", body=body, sentiment=sentiment)
        resolved_at = t + timedelta(minutes=rng.randint(5, 240))
        if resolved_at < self.now:
            self.demo.resolve[opener.external_id] = resolved_at
            if not bot_only:
                self.demo.agent_of[opener.external_id] = agent[0]
        return t

    def visit(self, persona, at):
        t = at
        for _ in range(self.rng.randint(1, 4)):
            self.item(persona, at=t, channel="web", kind="visit", direction="inbound", author="customer",
                      data={"page": self.rng.choice(PAGES), "duration_seconds": self.rng.randint(5, 600)})
            t += timedelta(minutes=self.rng.randint(1, 15))
        return t

    def purchase(self, persona, at):
        product, price = self.rng.choice(PRODUCTS)
        channel = self.rng.choice(["web", "web", "store"])
        kinds = ["email"] if channel == "store" or not (persona.split and at < persona.join_at) else None
        self.item(persona, at=at, channel=channel, kind="purchase", direction="inbound", author="customer",
                  body=f"{product} × 1", data={"total": price, "currency": "EUR", "items": [product]},
                  identity_kinds=kinds)
        self.item(persona, at=at + timedelta(minutes=1), channel="email", kind="message", direction="outbound",
                  author="system", subject="Your order", body=f"Thanks for your order: {product}.", name=False,
                  identity_kinds=["email"])
        return at

    def reaction(self, persona, at):
        channel = self.rng.choice([c for c in ("facebook", "instagram") if c in persona.channels] or ["facebook"])
        if channel not in persona.channels:
            return at
        post = self.rng.choice(POSTS)
        if self.rng.random() < 0.7:
            self.item(persona, at=at, channel=channel, kind="reaction", direction="inbound", author="customer",
                      data={"reaction": self.rng.choice(["like", "love", "wow"]), "post_id": post})
        else:
            body, sentiment = self.text(persona, self.rng.choice(["happy", "question"]))
            self.item(persona, at=at, channel=channel, kind="comment", direction="inbound", author="customer",
                      body=body, sentiment=sentiment, data={"post_id": post})
        return at

    def campaign(self, persona, at):
        channel = self.rng.choice(["email", "sms"] if "sms" in persona.channels else ["email"])
        self.item(persona, at=at, channel=channel, kind="message", direction="outbound", author="system",
                  subject="New collection" if channel == "email" else "",
                  body="Our new collection is here — 10% off this week.", name=False)
        return at

    def join(self, persona):
        """The chat where the anonymous visitor gives their email: two customers become one."""
        t = persona.join_at
        body, sentiment = self.text(persona, "question")
        self.item(persona, at=t, channel="chat", kind="message", direction="inbound", author="customer",
                  body=f"{body} ({persona.identities['email']})", sentiment=sentiment, identity_kinds=["chat", "email"])
        t += timedelta(minutes=self.rng.randint(1, 10))
        self.item(persona, at=t, channel="chat", kind="message", direction="outbound", author="agent",
                  body=self.text(persona, "agent")[0], agent=self.agent(), name=False, identity_kinds=["chat"])
        return t

    def history(self, persona, budget):
        """Events for one customer until their share of interactions is spent."""
        rng = self.rng
        start_count = len(self.demo.items)
        t = self.start + timedelta(days=rng.uniform(0, HISTORY_DAYS * 0.4), minutes=rng.randint(0, 1439))
        persona.first_at = t
        joined = not persona.split
        # Signing up links the identities the customer gives us (a split customer's chat visitor id stays apart).
        kinds = [kind for kind in persona.identities if kind not in persona.split[:1]]
        self.item(persona, at=t, channel="web", kind="event", direction="inbound", author="customer",
                  body="Signed up", data={"event": "signup"}, identity_kinds=kinds)
        t += timedelta(minutes=rng.randint(1, 30))
        if persona.split:
            # …and browses the shop anonymously, as a visitor we do not know yet.
            t = self.visit(persona, t) + timedelta(hours=rng.randint(1, 48))
        stories = [(self.visit, 30), (self.purchase, 14), (self.reaction, 14), (self.campaign, 6),
                   (self.support_story, 36)]
        # A few customers are unhappy right now: their last story has not ended well yet.
        unhappy_at_end = rng.random() < 0.08
        while len(self.demo.items) - start_count < budget:
            if not joined and t >= persona.join_at:
                joined = True
                t = self.join(persona)
                continue
            story = rng.choices([s for s, _ in stories], weights=[w for _, w in stories])[0]
            last = budget - (len(self.demo.items) - start_count) <= 6
            if story is self.support_story:
                t = story(persona, t, ends_happy=not (unhappy_at_end and last))
            else:
                t = story(persona, t)
            # Spread the remaining stories (about three interactions each) over the time left.
            remaining = max(1.0, (budget - (len(self.demo.items) - start_count)) / 3)
            mean_gap = max(3600.0, (self.now - t).total_seconds() / remaining)
            t += timedelta(seconds=rng.expovariate(1 / mean_gap))
            if t >= self.now - timedelta(hours=1):
                break
        if not joined:
            self.join(persona)
        # Keep everything in the past.
        self.demo.items[start_count:] = [item for item in self.demo.items[start_count:] if item.occurred_at < self.now]

    def top_up(self, personas):
        """Visits and reactions at random times until the requested number of interactions is reached."""
        while len(self.demo.items) < self.budget:
            persona = self.rng.choice(personas)
            # After they signed up: before it, a visitor would be a stranger (and a merge at signup).
            window = (self.now - timedelta(hours=2) - persona.first_at).total_seconds()
            at = persona.first_at + timedelta(seconds=self.rng.uniform(60, max(120, window)))
            if persona.split and abs((at - persona.join_at).total_seconds()) < 60:
                continue
            if self.rng.random() < 0.7:
                self.item(persona, at=at, channel="web", kind="visit", direction="inbound", author="customer",
                          data={"page": self.rng.choice(PAGES), "duration_seconds": self.rng.randint(5, 600)})
            else:
                channel = "instagram" if "instagram" in persona.channels else "facebook"
                self.item(persona, at=at, channel=channel, kind="reaction", direction="inbound", author="customer",
                          data={"reaction": "like", "post_id": self.rng.choice(POSTS)})

    def build(self):
        personas = [self.persona(number) for number in range(1, self.customers + 1)]
        weights = [self.rng.paretovariate(1.6) for _ in personas]
        total = sum(weights)
        for persona, weight in zip(personas, weights):
            self.history(persona, max(4, round(self.budget * weight / total)))
        self.top_up(personas)
        self.demo.items.sort(key=lambda item: (item.occurred_at, item.external_id))
        return personas, self.demo


def batches(demo, size):
    """Time-ordered batches; a joining item never shares a batch with its two halves' earlier items."""
    batch, personas_in_batch = [], set()
    for item in demo.items:
        persona = demo.persona_of[item.external_id]
        if batch and (len(batch) >= size or (item.external_id in demo.joins and persona in personas_in_batch)):
            yield batch
            batch, personas_in_batch = [], set()
        batch.append(item)
        personas_in_batch.add(persona)
    if batch:
        yield batch


class Command(BaseCommand):
    help = "Load demo customers with six months of history on every channel (skipped when customers exist)."

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, default=300)
        parser.add_argument("--interactions", type=int, default=10_000)
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--batch-size", type=int, default=MAX_BATCH)
        parser.add_argument("--force", action="store_true", help="Load even when customers exist (a new source).")

    def handle(self, *args, customers, interactions, seed, batch_size, force, **options):
        if not 1 <= batch_size <= MAX_BATCH:
            raise CommandError(f"--batch-size must be 1..{MAX_BATCH}")
        if customers < 2 or interactions < customers:
            raise CommandError("Need at least 2 customers and at least one interaction per customer.")
        if customer_list().exists() and not force:
            self.stdout.write("Customers exist already; demo data not loaded (use --force to add it anyway).")
            return
        started = time.monotonic()
        agents = agents_ensure()
        generator = Generator(customers=customers, interactions=interactions, seed=seed, now=timezone.now(),
                              agent_ids=[(user.pk, user.get_full_name()) for user in agents])
        personas, demo = generator.build()

        created = 0
        merges_before = merge_list().count()
        opener_conversations = {}
        persona_customer = {}
        with metrics_deferred():
            for batch in batches(demo, batch_size):
                for item, result in zip(batch, interactions_ingest(items=batch)):
                    if result.status == "rejected":
                        raise CommandError(f"demo item {item.external_id} was rejected: {result.errors}")
                    created += result.status == "created"
                    if item.external_id in demo.resolve:
                        opener_conversations[item.external_id] = result.interaction.conversation_id
                    persona_customer.setdefault(demo.persona_of[item.external_id], result.interaction.customer_id)

            resolved = conversations_resolve(demo, opener_conversations)
            live = customer_ids_resolve(set(persona_customer.values()))
            customer_of = {number: live[pk] for number, pk in persona_customer.items()}
            merged = merge_list().count() - merges_before
            segments_assign(personas, customer_of, generator.rng)
            surveys = surveys_answer(demo, resolved, customer_of, generator.rng)
        from metrics.services import all_recompute

        all_recompute()
        self.stdout.write(
            f"Demo data: {len(personas)} customers ({merged} first seen as two people, then auto-merged), "
            f"{created} interactions, {len(resolved)} conversations resolved, {surveys} survey answers, "
            f"{len(agents)} agents in {time.monotonic() - started:.1f}s."
        )


@contextmanager
def metrics_deferred():
    """In the embedded mode (tasks in-process), recompute metrics once at the end, not after every batch.

    Ingestion marks customers dirty and, with tasks in-process, recomputes them
    right after each batch commits: replaying half a year in batches would
    recompute most customers a dozen times. Here the recompute tasks go to the
    in-memory broker instead (nobody consumes it) and the command runs one full
    recompute at the end. With a real broker nothing changes.
    """
    from crm.celery import app

    if not settings.CELERY_TASK_ALWAYS_EAGER:
        yield
        return
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        with override_settings(CELERY_TASK_ALWAYS_EAGER=False):
            yield
    finally:
        app.conf.task_always_eager = previous


def agents_ensure():
    """Staff users for the human agents, in the Agents group (created if missing)."""
    User = get_user_model()
    group, _ = Group.objects.get_or_create(name="Agents")
    agents = []
    for username, first, last in AGENTS:
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User.objects.create_user(username=username, email=f"{username}@example.com", first_name=first,
                                            last_name=last, is_staff=True)
        user.groups.add(group)
        agents.append(user)
    return agents


def conversations_resolve(demo, opener_conversations):
    """Resolve the conversations whose story ended happily, at the time it did.

    `conversation_update` stamps the resolution with the current time; demo
    history is replayed, so the stamp is then set to when it happened.
    """
    from interactions.models import Conversation

    resolved_at = {}
    for external_id, conversation_id in opener_conversations.items():
        if conversation_id:
            resolved_at[conversation_id] = max(resolved_at.get(conversation_id, demo.resolve[external_id]),
                                               demo.resolve[external_id])
    opener_of = {conversation_id: external_id for external_id, conversation_id in opener_conversations.items()}
    resolved = {}
    for conversation in conversation_list().filter(pk__in=resolved_at, status__in=["open", "pending"]):
        if conversation.last_activity_at > resolved_at[conversation.pk]:
            continue  # the customer wrote again after the happy end: still open
        with transaction.atomic():
            conversation_update(conversation=conversation, fields={"status": "resolved"})
            Conversation.objects.filter(pk=conversation.pk).update(resolved_at=resolved_at[conversation.pk])
        resolved[conversation.pk] = (opener_of[conversation.pk], resolved_at[conversation.pk])
    return resolved


def segments_assign(personas, customer_of, rng):
    """Segments and switching costs, so the segment and loyalty views have something to show."""
    done = set()
    for persona in personas:
        customer_id = customer_of.get(persona.number)
        if customer_id is None or customer_id in done:
            continue
        done.add(customer_id)
        slugs = [slug for slug, p in zip(SEGMENTS, (0.1, 0.15, 0.2, 0.25)) if rng.random() < p]
        cost = round(rng.uniform(0, 500), 2) if rng.random() < 0.6 else None
        customer_update(customer=customer_detail_queryset().get(pk=customer_id), segments=slugs, switching_cost=cost,
                        fields_set={"segments", "switching_cost"})


def surveys_answer(demo, resolved, customer_of, rng):
    """Survey answers after resolved conversations (CSAT, CES, time well spent and the agent's guess) and NPS.

    Through `metrics.services.survey_response_create`, so each answer is also a
    `survey` interaction on the customer's timeline.
    """
    from metrics.services import survey_response_create

    count = 0

    def answer(**fields):
        nonlocal count
        count += 1
        survey_response_create(source=SOURCE, external_id=f"{SOURCE}-survey-{count:05d}", **fields)

    for conversation_id, (opener, resolved_at) in sorted(resolved.items()):
        customer_id = customer_of[demo.persona_of[opener]]
        at = resolved_at + timedelta(minutes=rng.randint(10, 600))
        if at >= demo.now:
            continue
        # Mostly happy after a resolution, sometimes not quite.
        happy = rng.random() < 0.8
        if rng.random() < 0.3:
            answer(customer_id=customer_id, kind="csat", score=rng.choice([4, 5, 5]) if happy else rng.choice([1, 2, 3]),
                   answered_at=at, question="How satisfied are you with our support?", conversation_id=conversation_id)
        if rng.random() < 0.12:
            answer(customer_id=customer_id, kind="ces", score=rng.choice([5, 6, 7]) if happy else rng.choice([2, 3, 4]),
                   answered_at=at, question="How easy was it to get your issue solved?", conversation_id=conversation_id)
        if rng.random() < 0.15:
            score = rng.choice([4, 5]) if happy else rng.choice([1, 2, 3])
            answer(customer_id=customer_id, kind="tws", score=score, answered_at=at,
                   question="Was your time well spent with us?", conversation_id=conversation_id)
            agent = demo.agent_of.get(opener)
            if agent:
                guess = max(1, min(5, score + rng.choice([-1, 0, 0, 1])))
                answer(customer_id=customer_id, kind="tws", score=guess, answered_at=at, respondent="agent",
                       agent_id=agent, conversation_id=conversation_id,
                       question="Would the customer say their time was well spent?")
    unhappy = {number for number in demo.unhappy_now}
    for number, customer_id in sorted(customer_of.items()):
        if rng.random() < 0.4:
            at = demo.now - timedelta(days=rng.uniform(1, HISTORY_DAYS * 0.6))
            if number in unhappy:
                score = rng.randint(0, 6)
            else:
                score = rng.choices(range(11), weights=[1, 1, 1, 1, 2, 2, 3, 6, 8, 12, 10])[0]
            answer(customer_id=customer_id, kind="nps", score=score, answered_at=at, channel="email",
                   question="How likely are you to recommend us to a friend?")
    return count
